"""Label Studio tests. A package, so that tests/studio/conftest.py is imported as `studio.conftest` and
does not replace the top-level `conftest` module that other tests import (`from conftest import run_cli`)."""
