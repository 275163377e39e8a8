"""The workspace catalog: one SQLite database (WAL mode) that is the single source of truth.

Every clip, source video, sampled frame, audio record, object, expression, mask version, finished
mask set, fingerprint, per-stage status and failure lives here, one record type per table
(`records.py`). Each write is one transaction, so a process killed at any moment leaves the
previous state intact; files on disk are written to temporary names and renamed before their row is
committed. Paths are stored relative to the workspace root (`ws.path(rel)` resolves them), so a
workspace can be moved or copied. Code outside this package calls the typed methods below and
writes no SQL; `tx()` and `query()` are internal.

    base.py        connection, transactions, meta, schema creation, migration on open
    schema.py      SCHEMA (every table), SCHEMA_VERSION, the upgrade from older catalogs
    core.py        sources, clips, stage status (one record of "done" per clip and stage), the ledger
    sampled.py     sampled frames and audio (the sample stage)
    mask_versions.py  mask versions, finished mask sets, objects, expressions
    splits.py      split assignment, fingerprints (table access for splits.py)
    categories.py  changing a clip's category and what derives from it (table access for categories.py)
    studio.py      Label Studio: the project per server, pushed tasks and predictions (table access for studio/)
    reviews.py     Label Studio: pulled annotations, frame flags, review sets, the pull cursor
"""

from __future__ import annotations

from avsbench_tools.catalog.categories import CategoryMethods
from avsbench_tools.catalog.connection import CatalogBase
from avsbench_tools.catalog.core import CoreMethods
from avsbench_tools.catalog.mask_versions import MaskMethods
from avsbench_tools.catalog.records import (
    STAGES,
    AudioRecord,
    Clip,
    Expression,
    Failure,
    Fingerprint,
    Frame,
    MaskVersion,
    ObjectRecord,
    Source,
    StageState,
    now,
)
from avsbench_tools.catalog.reviews import ClipReviews, ReviewMethods, StudioReview
from avsbench_tools.catalog.sampled import MediaMethods
from avsbench_tools.catalog.schema import SCHEMA, SCHEMA_VERSION
from avsbench_tools.catalog.splits import SplitMethods
from avsbench_tools.catalog.studio import StudioMethods


class Catalog(CoreMethods, MediaMethods, MaskMethods, SplitMethods, CategoryMethods, StudioMethods, ReviewMethods,
              CatalogBase):
    """Typed access to the workspace database, taking ids. One connection per process.

    `Catalog(path, root=None)`: `root` (default: the catalog file's folder) is what stored paths are
    relative to. An older catalog is upgraded in place when opened; a newer one is a UsageError."""


__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "STAGES", "AudioRecord", "Catalog", "Clip", "ClipReviews", "Expression", "Failure",
    "Fingerprint", "Frame", "MaskVersion", "ObjectRecord", "Source", "StageState", "StudioReview", "now",
]
