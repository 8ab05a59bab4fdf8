"""Download usage-export parts from pre-signed URLs, streamed to disk and gzip-verified.

Pre-signed URLs are fetched with a plain ``httpx.AsyncClient`` and **without** the
``Circle-Token`` (the links carry their own signature; the token must not leak to the
storage host). A 403 (or 404) means the link expired: the caller fetches fresh URLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from circleci_analytics.connectors.errors import DataError

__all__ = ["DownloadStats", "UrlExpired", "download_part", "part_filename"]


class UrlExpired(Exception):
    """The pre-signed URL answered 403/404: get fresh URLs from the job."""


@dataclass
class DownloadStats:
    requests: int = 0
    retries: int = 0
    bytes: int = 0


def part_filename(url: str, index: int) -> str:
    """``part-0003.csv.gz`` style name from the URL path (falls back to the index)."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if name.endswith(".gz") and len(name) < 120:
        return name
    return f"part-{index:04d}.csv.gz"


async def download_part(
    http: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    verify: Callable[[Path], int],
    stats: DownloadStats,
    max_attempts: int = 3,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    backoff: float = 1.0,
) -> int:
    """Stream ``url`` to ``dest`` and verify it; re-download a truncated/corrupt part.

    Returns the compressed size. Raises ``UrlExpired`` on 403/404 and ``DataError`` when
    the part is still bad after ``max_attempts``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".download")
    last_error = ""
    for attempt in range(1, max_attempts + 1):
        if attempt > 1:
            stats.retries += 1
            await sleep(backoff * 2 ** (attempt - 2))
        stats.requests += 1
        size = 0
        try:
            # No Circle-Token here, on purpose: the URL is pre-signed.
            async with http.stream("GET", url, headers={"Accept": "*/*"}) as response:
                if response.status_code in (403, 404):
                    raise UrlExpired(f"HTTP {response.status_code}")
                if response.status_code >= 400:
                    last_error = f"HTTP {response.status_code}"
                    continue
                with tmp.open("wb") as fh:
                    async for chunk in response.aiter_raw():
                        fh.write(chunk)
                        size += len(chunk)
        except httpx.TransportError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            tmp.unlink(missing_ok=True)
            continue
        try:
            verify(tmp)
        except DataError as exc:
            last_error = str(exc)
            tmp.unlink(missing_ok=True)
            continue
        tmp.replace(dest)
        stats.bytes += size
        return size
    tmp.unlink(missing_ok=True)
    raise DataError(f"usage export part {dest.name}: still unusable after {max_attempts} downloads ({last_error})")

