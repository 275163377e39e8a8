"""Parquet shards with the Hugging Face features in their schema: written in row groups, cut at a size."""

from __future__ import annotations

import json
from pathlib import Path

from avsbench_tools.errors import require

SHARD_BYTES = 256 * 1024 * 1024  # "hundreds of MB at most" per shard
ROW_GROUP = 32


def arrow_schema(features: dict):
    """The pyarrow schema of a features dict, carrying the features as `datasets` stores them, so
    `load_dataset("parquet", ...)` decodes images and audio without being told the features."""
    datasets = require("datasets", "publish")
    feats = datasets.Features.from_dict(features)
    schema = feats.arrow_schema
    meta = dict(schema.metadata or {})
    meta[b"huggingface"] = json.dumps({"info": {"features": feats.to_dict()}}).encode()
    return schema.with_metadata(meta)


class ShardWriter:
    """Rows of one table and split into `<folder>/<split>-NNNNN.parquet`, a new shard past `max_bytes`."""

    def __init__(self, folder: Path, split: str, schema, max_bytes: int = SHARD_BYTES):
        self.folder, self.split, self.schema, self.max_bytes = Path(folder), split, schema, max_bytes
        self.shards: list[Path] = []
        self.rows = 0
        self._writer = None
        self._bytes = 0
        self._pending: list[dict] = []

    def add(self, row: dict) -> None:
        self._pending.append(row)
        if len(self._pending) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        pa = require("pyarrow", "publish")
        pq = require("pyarrow.parquet", "publish")
        batch = pa.RecordBatch.from_pylist(self._pending, schema=self.schema)
        if self._writer is not None and self._bytes + batch.nbytes > self.max_bytes:
            self._close_shard()
        if self._writer is None:
            path = self.folder / f"{self.split}-{len(self.shards):05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            # images, audio and pickles are compressed already: compressing them again costs time for little
            self._writer = pq.ParquetWriter(path, self.schema, compression="zstd", compression_level=1,
                                            use_dictionary=False, write_statistics=False)
            self.shards.append(path)
            self._bytes = 0
        self._writer.write_batch(batch)
        self._bytes += batch.nbytes
        self.rows += len(self._pending)
        self._pending = []

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        self.flush()
        self._close_shard()


def read_rows(path: Path, columns: list[str] | None = None, batch: int = ROW_GROUP):
    """The rows of a parquet file, a batch at a time (memory stays flat)."""
    pq = require("pyarrow.parquet", "publish")
    f = pq.ParquetFile(path)
    try:
        for b in f.iter_batches(batch_size=batch, columns=columns):
            yield from b.to_pylist()
    finally:
        f.close()
