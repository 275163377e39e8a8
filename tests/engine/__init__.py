"""Ray engine tests. A package, so that tests/engine/conftest.py is imported as `engine.conftest` and does
not replace tests/conftest.py; helpers are imported from tests/helpers (ray_cluster)."""
