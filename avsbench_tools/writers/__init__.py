"""Release writers: one module per official on-disk layout (see shared design formats.md).

Each writer is streaming: `w = open_writer(fmt, root, recipe)`, `w.add(ReleaseClip(...))` per clip,
`w.close()` writes the metadata files. Memory stays flat however many clips are written.
"""

from __future__ import annotations

from pathlib import Path

from avsbench_tools.writers.base import RefObject, ReleaseClip, ReleaseWriter

__all__ = ["RefObject", "ReleaseClip", "ReleaseWriter", "open_writer"]


def open_writer(fmt: str, root: Path, recipe) -> ReleaseWriter:
    from avsbench_tools.writers import avsbench_ms3, avsbench_s4, avss, refavs

    table = {"avsbench-s4": avsbench_s4.S4Writer, "avsbench-ms3": avsbench_ms3.MS3Writer,
             "avss": avss.AVSSWriter, "ref-avs": refavs.RefAVSWriter}
    return table[fmt](Path(root), recipe)
