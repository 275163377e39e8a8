"""Which Label Studio server a command talks to, and whether it answers: `connect(ws, url, api_key)`.

Order: the command's options (--url/--api-key), then LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY, then the
workspace's own server (`avs-tools studio start WS`). The workspace's token is only ever sent to the
workspace's own server. No message, repr or log line holds the API key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from avsbench_tools.errors import AvsError, UsageError
from avsbench_tools.studio.server import StudioPaths, moved, read_token, server_state

ENV_URL = "LABEL_STUDIO_URL"
ENV_KEY = "LABEL_STUDIO_API_KEY"
NO_SERVER = "no Label Studio server: run `avs-tools studio start WS` or pass --url/--api-key"
CHECK_TIMEOUT = 10.0


class StudioUnreachable(AvsError):
    """The server is down, is not Label Studio, or refuses the API key (exit 1; the message names the URL)."""


@dataclass
class Connection:
    """A Label Studio server and the API key to use with it; `source` is option, env or workspace.

    `document_root` is the server's local-files root when known (the workspace's own server), else None."""

    url: str
    api_key: str = field(repr=False)
    source: str
    document_root: str | None = None
    _sdk: object = field(default=None, repr=False, compare=False)
    _http: object = field(default=None, repr=False, compare=False)

    def client(self):
        """This connection's label_studio_sdk client (`LabelStudio(base_url=url, api_key=api_key)`), made once: one
        HTTP connection pool and TLS context per command, not one per call (each new httpx client loads the CA store,
        ~20 ms). The SDK sends a legacy token as `Authorization: Token <key>` and a personal access token (JWT) as
        Bearer."""
        if self._sdk is None:
            from label_studio_sdk import LabelStudio
            from label_studio_sdk.core.api_error import ApiError

            try:
                self._sdk = LabelStudio(base_url=self.url, api_key=self.api_key, timeout=60, httpx_client=self._httpx())
            except ApiError as exc:  # an expired personal access token is refused when the client is made
                raise StudioUnreachable(f"Label Studio at {self.url} refused the API key ({exc.status_code})") from None
        return self._sdk

    def _httpx(self):
        """The connection's plain httpx client (no key on it: the SDK adds its headers per request)."""
        if self._http is None:
            import httpx

            self._http = httpx.Client(timeout=60, follow_redirects=True)
        return self._http

    def __getstate__(self) -> dict:  # a Connection sent to another process makes its own clients there
        return {**self.__dict__, "_sdk": None, "_http": None}

    def check(self) -> str:
        """Raise a one-line StudioUnreachable when the server is down, is not Label Studio, or refuses
        the key; return the email of the user the key belongs to."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            r = self._httpx().get(self.url + "/health", timeout=CHECK_TIMEOUT)
        except httpx.HTTPError as exc:
            raise StudioUnreachable(f"cannot reach Label Studio at {self.url}: {_why(exc)}") from None
        if not _is_health(r):
            raise StudioUnreachable(f"{self.url} is not a Label Studio server (GET /health answered "
                                    f"HTTP {r.status_code}{'' if r.status_code != 200 else ' without its status'})")
        try:
            who = self.client().users.whoami()
        except ApiError as exc:
            code = exc.status_code
            if code in (401, 403):
                raise StudioUnreachable(f"Label Studio at {self.url} refused the API key ({code})") from None
            raise StudioUnreachable(f"Label Studio at {self.url} answered HTTP {code} to the user check") from None
        except httpx.HTTPError as exc:
            raise StudioUnreachable(f"cannot reach Label Studio at {self.url}: {_why(exc)}") from None
        return who.email or who.username or ""


    def check_serving(self, ws_root, pid: int | None = None) -> None:
        """Raise a one-line UsageError unless the server can serve the workspace's media folders (local
        files serving on, each folder below its document root): asked before push makes a project, or changes
        one, so a refusal leaves nothing on the server. The server is asked to validate a local-files storage of
        each folder (nothing is saved); that needs a project id: `pid`, else an existing project's, and on a
        server without any project a scratch project is made for the question and deleted."""
        from avsbench_tools.studio.project import STORAGE_DIRS

        http = self.client()._client_wrapper.httpx_client
        root = os.path.abspath(ws_root)
        dirs = [os.path.join(root, d) for d in STORAGE_DIRS if os.path.isdir(os.path.join(root, d))]
        if not dirs:
            return
        fix = ("use the workspace's own server (avs-tools studio start WS), or start yours with "
               "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to "
               "the workspace or a folder above it")
        r = self._call(http, "GET", "data/local-files/", params={"d": "avs-tools-serving-check"})
        if r.status_code == 403 and "LOCAL_FILES_SERVING_ENABLED" in r.text:  # its own words when serving is off
            raise UsageError(f"Label Studio at {self.url} cannot serve the workspace's files (local file serving "
                             f"is off): {fix}")
        scratch = None
        if pid is None:
            listed = self._call(http, "GET", "api/projects/", params={"page": 1, "page_size": 1})
            rows = listed.json() if listed.status_code == 200 else []
            rows = rows.get("results", []) if isinstance(rows, dict) else rows
            pid = int(rows[0]["id"]) if rows else None
        if pid is None:
            made = self._call(http, "POST", "api/projects/", json={"title": "avs-tools serving check",
                                                                    "description": "made and deleted by avs-tools"})
            if made.status_code >= 400:
                raise StudioUnreachable(f"Label Studio at {self.url} answered HTTP {made.status_code} to a project "
                                        "creation")
            pid = scratch = int(made.json()["id"])
        try:
            for path in dirs:
                r = self._call(http, "POST", "api/storages/localfiles/validate",
                               json={"project": pid, "path": path, "title": "avs-tools check", "regex_filter": "^$",
                                     "use_blob_urls": False})
                if r.status_code >= 400:
                    raise UsageError(f"Label Studio at {self.url} cannot serve the workspace's files from {path} "
                                     f"({_storage_why(r.text)}): {fix}")
        finally:
            if scratch is not None:
                self._call(http, "DELETE", f"api/projects/{scratch}/")

    def _call(self, http, method: str, path: str, **kw):
        import httpx

        try:
            return http.request(path, method=method, request_options={"max_retries": 0, "timeout_in_seconds": 60},
                                **kw)
        except httpx.HTTPError as exc:
            raise StudioUnreachable(f"cannot reach Label Studio at {self.url}: {_why(exc)}") from None


def _storage_why(text: str) -> str:
    low = text.lower()
    if "subdirectory of" in low or "document_root" in low:
        return "the folder is not under its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
    if "serving local files" in low or "local_files_serving_enabled" in low:
        return "local file serving is off"
    if "does not exist" in low:
        return "the server cannot see that folder"
    return " ".join(text.split())[:160]


def _is_health(r) -> bool:
    if r.status_code != 200:
        return False
    try:
        body = r.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("status") == "UP"


def _why(exc) -> str:
    """A few words for a connection failure (never the request: it carries the key's header)."""
    import httpx

    text = str(exc).lower()
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {CHECK_TIMEOUT:.0f} s"
    if "refused" in text:
        return "connection refused"
    if "name or service" in text or "nodename" in text or "name resolution" in text or "getaddrinfo" in text:
        return "host not found"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    return type(exc).__name__


def _clean_url(url: str, what: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{what} {url!r} is not an http(s) URL (e.g. http://localhost:8080)")
    return url


def connect(ws=None, url: str | None = None, api_key: str | None = None) -> Connection:
    """The server to use: options, then LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY, then the workspace's own
    server (its running `avs-tools studio start` server and WS/studio/token). Nothing is contacted here:
    call `.check()`. Raises UsageError when nothing is configured or a URL comes without its key."""
    env_url, env_key = os.environ.get(ENV_URL) or None, os.environ.get(ENV_KEY) or None
    own = server_state(ws) if ws is not None else None
    paths = StudioPaths.of(ws) if ws is not None else None
    if url:
        found, source = _clean_url(url, "--url"), "option"
    elif env_url:
        found, source = _clean_url(env_url, ENV_URL), "env"
    elif api_key:
        raise UsageError("--api-key needs --url (or LABEL_STUDIO_URL): which server is the key for?")
    elif own is not None:
        if moved(own, paths):
            raise UsageError(f"the workspace moved since its Label Studio (pid {own['pid']}) started at "
                             f"{own['document_root']}: run `avs-tools studio start {paths.ws_root}` (it restarts it)")
        token = read_token(paths)
        if token is None:
            raise UsageError(f"the workspace's Label Studio runs at {own['url']} but {paths.token} is missing")
        return Connection(own["url"], token, "workspace", own.get("document_root"))
    else:
        raise UsageError(NO_SERVER)
    key = api_key or env_key
    doc_root = own.get("document_root") if own is not None and own["url"] == found else None
    if key is None and doc_root is not None:
        key = read_token(paths)  # the URL given is the workspace's own server
    if not key:
        raise UsageError(f"no API key for {found}: pass --api-key or set {ENV_KEY}")
    return Connection(found, key, source, doc_root)
