"""release-check: is a release learnable, and does audio matter? (`avs-tools release-check`)

    stage.py    check_release_learnable(release, fmt, out, opts, progress): validate, stats, trivial
                predictors, two baseline runs (audio / no audio), the verdicts
    plan.py     the run size scaled to the hardware (ReleaseCheckOptions, make_plan)
    trivial.py  all-empty, all-full and the mean training mask, scored with the official metrics
    scores.py   per-category scores and the worst clips
    report.py   OUT/index.html (self-contained, overlays of the worst clips) and OUT/report.json

Nothing heavy is imported here.
"""

from avsbench_tools.release_check.plan import ReleaseCheckOptions
from avsbench_tools.release_check.stage import (
    AUDIO_MARGIN,
    KIND,
    LEARNABLE_MARGIN,
    CheckReport,
    check_release_learnable,
)

__all__ = ["AUDIO_MARGIN", "KIND", "LEARNABLE_MARGIN", "CheckReport", "ReleaseCheckOptions", "check_release_learnable"]
