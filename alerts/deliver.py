"""Delivery through apprise: one URL per destination, never logged.

A destination URL is its own credential (a Slack or Teams webhook URL is all it takes to
post), so it is handled like the API token: `destination_id` names it in the history and the
report (scheme and a hash, never the URL), and while apprise sends, every part of the URL is
redacted from the apprise, requests and urllib3 logs and from the error kept.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from circleci_analytics.connectors.auth import Redactor

__all__ = ["Notification", "deliver", "destination_id", "secret_parts"]

#: Loggers that may echo a URL while apprise sends (its own, and the HTTP stack under it);
#: the urllib3 one that logs each request is named, so it is guarded before it is imported.
SENDING_LOGGERS = ("apprise", "requests", "urllib3", "urllib3.connectionpool")
#: URL parts shorter than this are not redacted on their own (a port, "v1", "api").
_MIN_SECRET = 4


@dataclass(frozen=True)
class Notification:
    title: str
    body: str
    severity: str = "warning"  # apprise notify type: info, success, warning, failure


def destination_id(url: str) -> str:
    """`scheme#<10 hex digits of the URL's SHA-256>`: tells destinations apart, reveals nothing."""
    return f"{url.partition('://')[0]}#{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def secret_parts(url: str) -> list[str]:
    """What of `url` must not appear in text: the URL, all after the scheme, user, password,
    path segments and query values (apprise rewrites e.g. ``slack://A/B/C`` into an https URL,
    so the parts are redacted one by one too)."""
    parts = urlsplit(url)
    rest = url.partition("://")[2]
    pieces = [url, rest, parts.username or "", parts.password or ""]
    pieces += [unquote(s) for s in parts.path.split("/")] + [s for s in parts.path.split("/")]
    pieces += [v for _, v in parse_qsl(parts.query)]
    return [p for p in pieces if len(p) >= _MIN_SECRET]


def deliver(url: str, notification: Notification) -> str | None:
    """Send `notification` to `url`; None when delivered, else why not (URL-free)."""
    import apprise

    redact = Redactor(secret_parts(url))
    redact.guard_logs(SENDING_LOGGERS)
    try:
        with apprise.LogCapture(level=logging.WARNING) as captured:
            notifier = apprise.Apprise()
            if not notifier.add(url):
                return f"{destination_id(url)}: not a URL apprise can send to"
            redact.guard_logs(SENDING_LOGGERS)  # again: loading the plugin may have created loggers
            ok = notifier.notify(title=notification.title, body=notification.body,
                                 notify_type=notification.severity, body_format=apprise.NotifyFormat.TEXT)  # fmt: skip
            if ok:
                return None
            detail = " ".join(line.strip() for line in captured.getvalue().splitlines() if line.strip())
            return redact(detail or "apprise reported a failure")
    except Exception as e:  # a plugin error: report it, the next night retries
        return redact(f"{type(e).__name__}: {e}")
    finally:
        redact.unguard_logs()
