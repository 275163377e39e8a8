"""Label Studio tests. A package, so that tests/studio/conftest.py is imported as `studio.conftest` and does
not replace tests/conftest.py; helpers are imported from tests/helpers (studio_server, studio_tasks)."""
