"""publish: a release as Hugging Face Parquet + README + Croissant, and back (unpublish).

    tables.py      the rows: frames, clips, other files (every file of the tree in exactly one row)
    shards.py      Parquet shards carrying the `datasets` features
    stage.py       publish() / unpublish()
    hub.py         README.md with the Hub's YAML header
    croissant.py   croissant.json (Croissant 1.1 + RAI)
    provenance.py  what the workspace catalog adds: licences, per-frame provenance, RAI facts
"""

from avsbench_tools.publish.stage import (
    KIND,
    PublishResult,
    UnpublishResult,
    publish,
    published_format,
    unpublish,
)

__all__ = ["KIND", "PublishResult", "UnpublishResult", "publish", "published_format", "unpublish"]
