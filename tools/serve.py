"""Serve a folder on 127.0.0.1 (random free port) for the offline demo; prints the base URL."""

import functools
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # yt-dlp closes its first (content-type sniffing) request early: a broken pipe is normal here
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def start(folder: str) -> tuple[ThreadingHTTPServer, str]:
    httpd = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


if __name__ == "__main__":
    httpd, base = start(sys.argv[1])
    print(base, flush=True)
    threading.Event().wait()
