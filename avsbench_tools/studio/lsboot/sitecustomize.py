"""Run by Python at the start of the workspace's Label Studio server (its PYTHONPATH names this folder).

Django's development server, which `label-studio start` runs, answers each request in several socket writes
(status line, headers, body) on a socket with Nagle's algorithm on: the second write waits for the client's ACK
of the first, which Linux delays by up to 40 ms. Every request then took 40-60 ms however little the server did
(GET /health: 48 ms against 3 ms), push's import requests included, and the editor's own API calls alike.
TCP_NODELAY on the server's sockets (socketserver's own switch) sends each write at once.

Python's cyclic garbage collector scanned the whole server (~300,000 objects of Django, Label Studio and the SDK,
loaded once and never freed) in every full collection: ~200 ms, one every few seconds of work, landing in whichever
request ran then (an import of 100 tasks took 0.27 s or 0.47 s). Before the server serves, its views and the SDK's
label interface (which the first requests would load) are imported, and everything alive then is moved out of the
collector's sight (`gc.freeze`: still freed by reference counting, never scanned): a full collection now takes
~35 ms, and the same imports take the same time run after run.

Any other sitecustomize on the path (a distribution's) still runs, after this.
"""

import socketserver

socketserver.StreamRequestHandler.disable_nagle_algorithm = True
_serve_forever = socketserver.BaseServer.serve_forever


def _settled_serve_forever(self, *args, **kwargs):
    import gc

    try:  # what the first requests would load: every view (the URL patterns) ...
        from django.urls import get_resolver

        get_resolver().url_patterns  # noqa: B018 - imports the views
    except Exception:  # noqa: BLE001 - not a configured Django server after all
        pass
    try:  # ... and the SDK's prediction checks
        import label_studio_sdk.label_interface  # noqa: F401
    except Exception:  # noqa: BLE001
        pass
    gc.collect()
    gc.freeze()
    return _serve_forever(self, *args, **kwargs)


socketserver.BaseServer.serve_forever = _settled_serve_forever


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
