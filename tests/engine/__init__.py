"""Ray engine tests. A package, so that tests/engine/conftest.py is imported as `engine.conftest` and does
not replace the top-level `conftest` module that other tests import (`from conftest import run_cli`)."""
