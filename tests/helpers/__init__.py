"""What the tests share besides fixtures (fixtures live in the conftest.py files; never import a conftest).

- `cli`: `run_cli` (the real `avs-tools` in a subprocess), `cli_here` (the same command in this process), `REPO`, `REAL_METADATA` (tests/data/real-metadata)
- `media_factory`: tiny videos with a frame counter drawn in (`make_video`, `read_counter`, `counter_frame`)
- `httpserver`: `MediaServer`, a loopback HTTP server that yt-dlp downloads from
- `worlds`: synthetic worlds built once per session for the baseline tests (`make_world`, `he_vggish`)
- `tiny_models`: tiny randomly initialised Grounding DINO / SAM / SAM 2 / SAM 3 / CLAP in their real formats
- `studio_tasks`: a sampled, pre-annotated workspace and Label Studio results as the editor writes them
- `studio_server`: the Label Studio server the studio fixtures start, and its users/clients/templates
- `ray_cluster`: a two-node Ray cluster on loopback and workspace digests for the Ray engine tests
- `browser`: headless Chromium (selenium) and `look_at_report`
"""

from tests.helpers.cli import REAL_METADATA, REPO, cli_here, run_cli

__all__ = ["REAL_METADATA", "REPO", "cli_here", "run_cli"]
