"""Negative-audio test sets: a release's test clips with audio that says nothing sounds, and their scores.

    sets.py     `export --negative-audio`: the copies (silence, noise, offscreen) beside a release
    robustness.py  FPR, G-mIoU, G-F on them, for `evaluate` and `release-check`

Written by export, scored by evaluate and release-check: the names those use are exported here.
"""

from avsbench_tools.negative_audio.robustness import (
    evaluate_negatives,
    frame_fpr,
    harmonic,
    html_section,
    lines,
    release_check_negatives,
    summarise,
    verdict,
)
from avsbench_tools.negative_audio.sets import (
    FOLDER,
    KINDS,
    NegativeSets,
    check_format,
    negative_roots,
    parse_kinds,
    write_negative_sets,
)

__all__ = [
    "FOLDER", "KINDS", "NegativeSets", "check_format", "evaluate_negatives", "frame_fpr", "harmonic", "html_section",
    "lines", "negative_roots", "parse_kinds", "release_check_negatives", "summarise", "verdict", "write_negative_sets",
]
