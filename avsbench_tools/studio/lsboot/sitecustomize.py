"""Run by Python at the start of the workspace's Label Studio server (its PYTHONPATH names this folder).

Django's development server, which `label-studio start` runs, answers each request in several socket writes
(status line, headers, body) on a socket with Nagle's algorithm on: the second write waits for the client's ACK
of the first, which Linux delays by up to 40 ms. Every request then took 40-60 ms however little the server did
(GET /health: 48 ms against 3 ms), push's import requests included, and the editor's own API calls alike.
TCP_NODELAY on the server's sockets (socketserver's own switch) sends each write at once.

Any other sitecustomize on the path (a distribution's) still runs, after this.
"""

import socketserver

socketserver.StreamRequestHandler.disable_nagle_algorithm = True


def _chain() -> None:
    import importlib.util
    import os
    import sys
    from importlib.machinery import PathFinder

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None and spec.origin != os.path.abspath(__file__):
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_chain()
