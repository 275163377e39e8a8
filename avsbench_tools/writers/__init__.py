"""Release writers: one module per official on-disk layout (see shared design formats.md).

Which class writes which format is said by its entry in `avsbench_tools.formats`.
Each writer is streaming: `w = open_writer(fmt, root, recipe)`, `w.add(ReleaseClip(...))` per clip,
`w.close()` writes the metadata files. Memory stays flat however many clips are written.
"""

from __future__ import annotations

from pathlib import Path

from avsbench_tools.writers.release_writer import RefObject, ReleaseClip, ReleaseWriter

__all__ = ["RefObject", "ReleaseClip", "ReleaseWriter", "open_writer"]


def open_writer(fmt: str, root: Path, recipe) -> ReleaseWriter:
    """The writer of format `fmt` (its entry in avsbench_tools.formats names the class) into `root`."""
    from avsbench_tools import formats

    return formats.get(fmt).open_writer(Path(root), recipe)
