"""One writer at a time per lake: a lease with an expiry, kept alive by a heartbeat.

The lease is one small JSON record at the lake root (``.lease.json``) naming its holder
(run label, host, pid, since when) and when it expires. It is changed only by two
conditional writes, the same protocol on both backends:

* ``create`` - write it only if there is none: locally ``link(2)`` of a complete temporary
  file (atomic, fails if the name exists); on S3 a ``PUT`` with ``If-None-Match: *``;
* ``swap``   - replace it only if it is still the version read before: locally a
  read-compare-rename under ``flock`` of a side file; on S3 a ``PUT`` with
  ``If-Match: <etag>``.

A writer reads the record. None there: it creates one. Released, expired, or held by a
process of this machine that no longer exists: it swaps in its own. Otherwise it polls until
`wait_seconds` have passed, then raises `LakeBusy` naming the holder and since when.
While held, a daemon thread renews the record every ``ttl / 4`` (a swap with a later expiry),
so a backfill of hours keeps it. If a renewal finds the record changed - the holder was
frozen past its expiry and another writer took over - the lease is lost and the next write
raises `LeaseLost`. Leaving swaps in a released record: the record stays, naming who held
it last.

Within a process the lease is re-entrant and shared by its threads (a flow holds it and its
tasks land from worker threads); a forked child holds nothing. Expiry compares the holder's
``expires_at`` with the reader's clock, so hosts sharing a lake must agree on the time to
well within the ttl (NTP does).

S3 conditional writes go through boto3 (pyarrow's S3 filesystem cannot send ``If-Match``);
the lake URI's query options (``endpoint_override``, ``scheme``, ``region``, credentials)
are mapped onto the boto3 client so the lease lives beside the data it guards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "DEFAULT_WAIT_SECONDS",
    "LEASE_NAME",
    "Holder",
    "LakeBusy",
    "Lease",
    "LeaseError",
    "LeaseLost",
    "LeaseStore",
    "LocalLeaseStore",
    "S3LeaseStore",
    "hold",
    "is_held",
    "s3_client_from_uri",
]

logger = logging.getLogger("circleci_analytics.warehouse.lease")

#: How long a second writer waits for the lease before giving up.
DEFAULT_WAIT_SECONDS = 600.0
#: How long a lease outlives its last renewal (a crashed holder blocks at most this long).
DEFAULT_TTL_SECONDS = 120.0
#: The lease record, at the lake root.
LEASE_NAME = ".lease.json"


class LeaseError(Exception):
    """The lake cannot be written now (base of `LakeBusy` and `LeaseLost`)."""


class LakeBusy(LeaseError):
    """Another writer held the lease for longer than we were willing to wait."""

    def __init__(self, where: str, holder: Holder, waited: float):
        self.holder, self.waited = holder, waited
        super().__init__(
            f"lake {where} is being written by {holder.describe()}; gave up after waiting {waited:.0f} s. "
            f"Run again when it has finished; if that process is gone, its lease expires at "
            f"{holder.expires_at:%Y-%m-%d %H:%M:%S} UTC."
        )


class LeaseLost(LeaseError):
    """Our lease was taken over (we were frozen past its expiry): writing now would race."""


# -- the record --------------------------------------------------------------------------------
@functools.cache
def _machine() -> str:
    """This process's pid space: host, boot and pid namespace (pids compare only within it)."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    with contextlib.suppress(OSError, IndexError):  # a zombie (killed, not yet reaped) is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lease."""

    owner: str
    host: str
    pid: int
    machine: str
    since: datetime
    expires_at: datetime
    token: str
    released: bool = False

    def describe(self) -> str:
        return f"{self.owner!r} (pid {self.pid} on {self.host}) since {self.since:%Y-%m-%d %H:%M:%S} UTC"

    def is_free(self, now: datetime) -> bool:
        """Released, expired, or its process is gone from this machine."""
        if self.released or now >= self.expires_at:
            return True
        return self.machine == _machine() and not _pid_alive(self.pid)

    def to_json(self) -> bytes:
        doc = {"owner": self.owner, "host": self.host, "pid": self.pid, "machine": self.machine,
               "since": _iso(self.since), "expires_at": _iso(self.expires_at), "token": self.token,
               "released": self.released}  # fmt: skip
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Holder:
        d = json.loads(data)
        return cls(str(d["owner"]), str(d["host"]), int(d["pid"]), str(d["machine"]), _parse_time(d["since"]),
                   _parse_time(d["expires_at"]), str(d["token"]), bool(d.get("released")))  # fmt: skip


# -- stores: the two conditional writes --------------------------------------------------------
class LeaseStore(Protocol):
    #: Identifies the lease (one per lake) within this process.
    key: str

    def read(self) -> tuple[bytes, str] | None:
        """The record and its version, or None when there is none."""

    def create(self, data: bytes) -> str | None:
        """Write the record if there is none; its version, or None if one exists."""

    def swap(self, data: bytes, version: str) -> str | None:
        """Replace the record if it is still `version`; the new version, or None."""


class LocalLeaseStore:
    """``<lake>/.lease.json`` (or another record `name`) on a local (or NFS) disk."""

    def __init__(self, root: str | Path, name: str = LEASE_NAME):
        self.path = Path(root) / name
        self.key = f"file:{self.path}"

    def read(self) -> tuple[bytes, str] | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def _temp(self, data: bytes) -> Path:
        tmp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)  # no fsync: a record torn by a power cut is unreadable, hence replaced
        return tmp

    def create(self, data: bytes) -> str | None:
        tmp = self._temp(data)
        try:
            os.link(tmp, self.path)  # atomic; the record is complete the moment it exists
        except FileExistsError:
            return None
        finally:
            tmp.unlink(missing_ok=True)
        return hashlib.sha256(data).hexdigest()

    def swap(self, data: bytes, version: str) -> str | None:
        # The record is never deleted, so a create cannot interleave with a swap; swaps are
        # serialised by flock, held only for the read-compare-rename.
        with open(self.path.with_name(self.path.name + ".lock"), "a+b") as mutex:
            fcntl.flock(mutex, fcntl.LOCK_EX)
            current = self.read()
            if current is None or current[1] != version:
                return None
            tmp = self._temp(data)
            os.replace(tmp, self.path)
        return hashlib.sha256(data).hexdigest()


#: Lake URI query options the boto3 client understands (pyarrow's S3 option names).
_S3_OPTIONS = frozenset({"endpoint_override", "scheme", "region", "access_key", "secret_key", "session_token",
                         "force_virtual_addressing", "anonymous", "allow_bucket_creation", "allow_bucket_deletion",
                         "connect_timeout", "request_timeout"})  # fmt: skip


def s3_client_from_uri(uri: str) -> tuple[Any, str, str]:
    """A boto3 S3 client configured like pyarrow for lake `uri`, its bucket and key prefix."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    parts = urlsplit(uri)
    opts = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(opts) - _S3_OPTIONS)
    if unknown:
        raise LeaseError(f"lake {parts.scheme}://{parts.netloc}{parts.path}: option(s) {unknown} are not supported "
                         "for the writer lease; configure them through the AWS environment instead")  # fmt: skip
    endpoint = opts.get("endpoint_override")
    if endpoint and "://" not in endpoint:
        endpoint = f"{opts.get('scheme', 'https')}://{endpoint}"
    style = "virtual" if opts.get("force_virtual_addressing", "").lower() == "true" else "path"
    config: dict[str, Any] = {"s3": {"addressing_style": style}, "retries": {"mode": "standard"}}
    if opts.get("anonymous", "").lower() == "true":
        config["signature_version"] = UNSIGNED
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint or None, region_name=opts.get("region"), aws_access_key_id=opts.get("access_key"),
        aws_secret_access_key=opts.get("secret_key"), aws_session_token=opts.get("session_token"),
        config=Config(**config),
    )  # fmt: skip
    return client, parts.netloc, parts.path.strip("/")


class S3LeaseStore:
    """``s3://bucket/prefix/.lease.json`` (or another record `name`), changed only by conditional PUTs."""

    #: Answers meaning "the condition did not hold" (412) or "a concurrent conditional write won" (409).
    _LOST = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"})

    def __init__(self, uri: str, name: str = LEASE_NAME):
        self.client, self.bucket, prefix = s3_client_from_uri(uri)
        #: The lake's key prefix (``""`` or ending in ``/``).
        self.prefix = f"{prefix}/" if prefix else ""
        self.object_key = self.prefix + name
        self.key = f"s3:{self.client.meta.endpoint_url}/{self.bucket}/{self.object_key}"

    def read(self) -> tuple[bytes, str] | None:
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self.object_key)
        except self.client.exceptions.NoSuchKey:
            return None
        return got["Body"].read(), got["ETag"]

    def _put(self, data: bytes, **condition: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            done = self.client.put_object(Bucket=self.bucket, Key=self.object_key, Body=data,
                                          ContentType="application/json", **condition)  # fmt: skip
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in self._LOST:
                return None
            raise
        return done["ETag"]

    def create(self, data: bytes) -> str | None:
        return self._put(data, IfNoneMatch="*")

    def swap(self, data: bytes, version: str) -> str | None:
        return self._put(data, IfMatch=version)


# -- a held lease ------------------------------------------------------------------------------
@dataclass
class Lease:
    """A lease this process holds (what ``Lake.lease`` yields)."""

    store: LeaseStore
    holder: Holder
    version: str
    ttl_seconds: float
    where: str
    #: Stale temporary files of a crashed writer removed when the lease was taken.
    removed_temp_files: int = 0
    lost: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def check(self) -> None:
        """Raise `LeaseLost` if the lease was taken over, or may have been: its last known
        expiry passed without a renewal (this process was frozen). Call before each write."""
        if not self.lost and datetime.now(UTC) >= self.holder.expires_at:
            self.lost = True
        if self.lost:
            raise LeaseLost(f"the writer lease on lake {self.where} was taken over after it expired; "
                            "this process was stalled longer than the lease ttl. Nothing more is written.")  # fmt: skip

    def renew(self) -> None:
        """Push the expiry `ttl_seconds` ahead (the heartbeat does this)."""
        with self._lock:
            if self.lost or self.holder.released:
                return
            expires = datetime.now(UTC) + timedelta(seconds=self.ttl_seconds)
            new = dataclasses.replace(self.holder, expires_at=expires)
            try:
                version = self.store.swap(new.to_json(), self.version)
            except Exception as e:  # a network blip: try again on the next beat
                logger.warning("could not renew the writer lease on %s: %s", self.where, e)
                if datetime.now(UTC) >= self.holder.expires_at:
                    self.lost = True
                return
            if version is None:
                self.lost = True
                logger.error("the writer lease on %s was taken over by another writer", self.where)
            else:
                self.holder, self.version = new, version

    def release(self) -> None:
        self._stop.set()
        with self._lock:
            if self.lost:
                return
            new = dataclasses.replace(self.holder, released=True, expires_at=datetime.now(UTC))
            try:
                if self.store.swap(new.to_json(), self.version) is None:
                    logger.warning("the writer lease on %s had been taken over before it was released", self.where)
            except Exception as e:  # it expires by itself
                logger.warning("could not release the writer lease on %s (it expires by itself): %s", self.where, e)
            self.holder = new

    def _beat(self) -> None:
        interval = self.ttl_seconds / 4
        while not self._stop.wait(interval):
            self.renew()
            if self.lost:
                return


def acquire(store: LeaseStore, owner: str, *, wait_seconds: float, ttl_seconds: float, where: str) -> Lease:
    """Take the lease, waiting up to `wait_seconds` for another holder; see the module doc."""
    if ttl_seconds <= 0 or wait_seconds < 0:
        raise ValueError(f"lease ttl must be > 0 and wait >= 0 (got ttl={ttl_seconds}, wait={wait_seconds})")
    started = time.monotonic()
    pause, seen = 0.02, ""
    while True:
        now = datetime.now(UTC)
        mine = Holder(owner, socket.gethostname(), os.getpid(), _machine(), now, now + timedelta(seconds=ttl_seconds),
                      uuid.uuid4().hex)  # fmt: skip
        current = store.read()
        holder = _parse(current[0], where) if current is not None else None
        if current is None or holder is None or holder.is_free(now):
            if holder is not None and not holder.released:
                logger.warning("taking over the writer lease of %s on %s: it expired or its process is gone",
                               holder.describe(), where)  # fmt: skip
            version = store.create(mine.to_json()) if current is None else store.swap(mine.to_json(), current[1])
            if version is None:
                continue  # another writer changed it between our read and write: read it again
            lease = Lease(store, mine, version, ttl_seconds, where)
            threading.Thread(target=lease._beat, name=f"lease-heartbeat {where}", daemon=True).start()
            return lease
        waited = time.monotonic() - started
        if waited >= wait_seconds:
            raise LakeBusy(where, holder, waited)
        if holder.token != seen:
            seen = holder.token
            logger.info("waiting up to %.0f s for the writer lease on %s, held by %s", wait_seconds, where,
                        holder.describe())  # fmt: skip
        time.sleep(min(pause * random.uniform(0.5, 1.5), wait_seconds - waited))
        pause = min(pause * 2, 1.0)


def _parse(data: bytes, where: str) -> Holder | None:
    try:
        return Holder.from_json(data)
    except (ValueError, KeyError, TypeError):
        logger.warning("the writer lease record on %s is unreadable; it will be replaced", where)
        return None


# -- re-entrant within a process ---------------------------------------------------------------
@dataclass
class _Held:
    lease: Lease
    depth: int


_registry_lock = threading.Lock()
_held: dict[str, _Held] = {}
_acquiring: dict[str, threading.Lock] = {}


def _forget_after_fork() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    _held.clear()
    _acquiring.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def is_held(store_key: str) -> Lease | None:
    """The lease this process holds for `store_key`, if any."""
    entry = _held.get(store_key)
    return entry.lease if entry else None


@contextlib.contextmanager
def hold(
    store: LeaseStore,
    owner: str,
    *,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    where: str = "",
    on_acquire: Callable[[Lease], None] | None = None,
) -> Iterator[Lease]:
    """Hold the lease of `store` for the block; free when this process already holds it.

    `on_acquire` runs once the lease is newly taken (the lake cleans a crashed writer's
    litter there); it is not run on a re-entrant hold.
    """
    with _registry_lock:
        gate = _acquiring.setdefault(store.key, threading.Lock())
    if not gate.acquire(timeout=wait_seconds + ttl_seconds):
        raise LeaseError(f"timed out waiting for another thread of this process to take the lease on {where}")
    try:
        entry = _held.get(store.key)
        if entry is not None:
            entry.lease.check()
            entry.depth += 1
        else:
            lease = acquire(store, owner, wait_seconds=wait_seconds, ttl_seconds=ttl_seconds, where=where or store.key)
            entry = _held[store.key] = _Held(lease, 1)
            if on_acquire is not None:
                try:
                    on_acquire(lease)
                except BaseException:
                    del _held[store.key]
                    lease.release()
                    raise
    finally:
        gate.release()
    try:
        yield entry.lease
    finally:
        with gate:
            entry.depth -= 1
            if entry.depth == 0:
                _held.pop(store.key, None)
                entry.lease.release()
