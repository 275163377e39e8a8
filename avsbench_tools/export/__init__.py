"""export: a workspace as a release in an official layout, plus a dataset card and checksums beside it.

OUT is the release root the way the official downloads unpack (`OUT/Single-source/...` for S4,
`OUT/Multi-sources/...` for MS3, `OUT/metadata.csv` etc. for AVSS and Ref-AVS).

    options.py ExportOptions: what `avs-tools export` sets
    stage.py   export(ws, out, opts, progress): checks, splits, each clip's masks -> masks_to_clip -> the format's writer
    card.py    DATASET_CARD.md: warnings, counts, provenance, licences
    output.py  what OUT may be (markers, protected paths, SHA256SUMS) and Ctrl-C while writing it
"""

from avsbench_tools.export.card import card, public_source, release_warnings
from avsbench_tools.export.options import ExportOptions
from avsbench_tools.export.output import (
    CARD,
    KIND,
    MANIFEST,
    foreign_file,
    is_legacy_release,
    manifest,
    protected_paths,
)
from avsbench_tools.export.stage import ExportResult, build_clip, export, release_names

_public_source = public_source  # the name tests and older callers import

__all__ = [
    "CARD", "KIND", "MANIFEST", "ExportOptions", "ExportResult", "build_clip", "card", "export", "foreign_file", "is_legacy_release",
    "manifest", "protected_paths", "public_source", "release_names", "release_warnings",
]
