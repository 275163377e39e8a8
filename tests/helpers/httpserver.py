"""A loopback HTTP server (127.0.0.1, random port) that serves files like a video host.

Supports Range requests (yt-dlp resumes .part files with them) and per-path behaviours a test can
switch at run time: ok, 404, 403, hang (answers after a delay longer than the client's timeout),
slow (trickles bytes) and hold (sends the first 64 KiB, then waits until the test sets `release`: a
download held half-way for as long as the test needs, however fast or loaded the machine). Counts GETs
per path.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class MediaServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.modes: dict[str, str] = {}
        self.gets: dict[str, int] = {}
        self.completed: dict[str, int] = {}
        self.slow_rate = 200_000  # bytes/s in 'slow' mode
        self.release = threading.Event()  # 'hold' mode: the rest of a held body is sent once this is set
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _serve(self, body: bool):
                path = self.path.split("?")[0].lstrip("/")
                mode = server.modes.get(path, "ok")
                if body:
                    server.gets[path] = server.gets.get(path, 0) + 1
                if mode in ("404", "403"):
                    self.send_response(int(mode))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mode == "hang":
                    time.sleep(6)
                f = server.root / path
                if not f.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = f.read_bytes()
                start, end = 0, len(data) - 1
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start = int(a) if a else 0
                    end = int(b) if b else end
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                if not body:
                    return
                chunk = data[start:end + 1]
                try:
                    if mode == "hold":
                        self.wfile.write(chunk[:65536])
                        self.wfile.flush()
                        server.release.wait(600)
                        self.wfile.write(chunk[65536:])
                    elif mode == "slow":
                        step = 16384
                        for off in range(0, len(chunk), step):
                            self.wfile.write(chunk[off:off + step])
                            self.wfile.flush()
                            time.sleep(step / server.slow_rate)
                    else:
                        self.wfile.write(chunk)
                    if end == len(data) - 1:
                        server.completed[path] = server.completed.get(path, 0) + 1
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                self._serve(True)

            def do_HEAD(self):
                self._serve(False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, rel: str) -> str:
        return f"http://127.0.0.1:{self.port}/{rel}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
