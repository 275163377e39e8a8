"""What went wrong with a source, whether retrying can help, and its row in the failure ledger.

Every source ends as clips or as a ledger row with its reason. Two kinds of rows:
- rejections (`permanent`, source status 'rejected', reason "rejected: ..."): no audio, too short,
  not a video, licence, private/removed video. Retrying cannot help, so `--retry-failed` leaves them
  (a licence/duration/height rejection is reconsidered only when the option that caused it changes);
- failures (not permanent, status 'failed'): network, HTTP 403/429/5xx, timeouts. `--retry-failed`
  tries them again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from avsbench_tools.catalog import Source


class SourceError(Exception):
    """A source could not be used. kind 'error': transient, retried; kind 'rejected': permanent.

    Permanent reasons always read "rejected: ...", so every listing tells them apart.
    """

    def __init__(self, reason: str, detail: str = "", kind: str = "error", network: bool = False,
                 interrupted: bool = False):
        if kind == "rejected" and not reason.startswith("rejected"):
            reason = f"rejected: {reason}"
        super().__init__(reason)
        self.reason, self.detail, self.kind, self.network = reason, detail, kind, network
        self.interrupted = interrupted  # a child process ended by a signal (Ctrl-C reached it too)

    @property
    def permanent(self) -> bool:
        return self.kind == "rejected"


def classify_error(message: str) -> tuple[str, bool, bool]:
    """yt-dlp / network error text -> (short reason, retryable, network-level).

    Not retryable (permanent): 404, private, age-restricted, removed, unsupported URL.
    """
    m = message.lower()
    table = [
        (("http error 404", "404: not found"), "not found (HTTP 404)", False, False),
        (("http error 403", "403: forbidden"), "forbidden (HTTP 403)", True, False),
        (("http error 429", "too many requests", "try again later", "rate-limit", "rate limit"),
         "rate limited (try again later)", True, False),
        (("sign in to confirm", "not a bot"), "bot check (sign in to confirm you're not a bot)", True, False),
        (("private video",), "private video", False, False),
        (("age-restricted", "confirm your age", "age restricted"), "age-restricted", False, False),
        (("video unavailable", "has been removed", "no longer available", "account associated"),
         "removed or unavailable", False, False),
        (("timed out", "timeout"), "timeout", True, True),
        (("name or service not known", "temporary failure in name resolution", "nodename nor servname",
          "network is unreachable", "no address associated", "failed to resolve", "getaddrinfo failed",
          "connection refused", "connection reset", "remote end closed", "unable to connect",
          "no route to host", "failed to establish", "unable to download webpage"),
         "network error", True, True),
        (("http error 5",), "server error (HTTP 5xx)", True, False),
        (("unsupported url",), "unsupported URL", False, False),
    ]
    for needles, reason, retry, network in table:
        if any(n in m for n in needles):
            return reason, retry, network
    return "download failed", True, False


def is_cc(license_text: str | None) -> bool:
    """Whether a licence text is a Creative Commons licence."""
    return bool(license_text) and ("creative commons" in license_text.lower() or re.search(r"\bcc[- ]by", license_text.lower()) is not None)


def _payload(f) -> dict:
    try:
        return json.loads(f.payload or "{}") or {}
    except ValueError:
        return {}


def is_permanent(failure) -> bool:
    """Whether a collect ledger row is a permanent rejection (never retried by --retry-failed)."""
    if getattr(failure, "permanent", None):
        return True
    p = _payload(failure)
    if "permanent" in p:
        return bool(p["permanent"])
    return p.get("kind") == "rejected" or (failure.reason or "").startswith("rejected")


def record(cat, item: str, reason: str, detail: str | None, payload: dict, permanent: bool) -> None:
    """A collect ledger row; `permanent` goes into its column and (for older readers) into the payload."""
    payload = {**payload, "kind": "rejected" if permanent else "error", "permanent": permanent}
    cat.record_failure("collect", item, reason, detail, payload=payload, permanent=permanent)


def source_label(src: Source) -> str:
    """How a source is shown to the user: its URL, or its file name under the --local folder."""
    if src.kind == "local":
        return src.title or (Path(src.path).name if src.path else src.source_id)
    return src.url or src.source_id
