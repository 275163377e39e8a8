"""Which node did how much work: the summary line of a Ray run and `status --json`'s `nodes`.

The counts of the last Ray run of each stage are kept in the catalog's meta table under NODES_META
(JSON: {stage: {"nodes": {node: items}, "at": time}}); a local run leaves them as they are.
"""

from __future__ import annotations

import json

NODES_META = "engine.nodes"


def read_nodes(meta: dict[str, str]) -> dict:
    """{stage: {"nodes": {node: items}, "at": time}} from the catalog's meta ({} when no Ray run)."""
    try:
        value = json.loads(meta.get(NODES_META) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def record_nodes(catalog, stage: str, counts: dict[str, int]) -> None:
    """Keep this run's work per node for `status --json` (merged over the stage's earlier Ray runs)."""
    from avsbench_tools.catalog import now

    allnodes = read_nodes(catalog.meta())
    old = allnodes.get(stage, {}).get("nodes", {})
    merged = dict(old)
    for node, n in counts.items():
        merged[node] = merged.get(node, 0) + n
    allnodes[stage] = {"nodes": dict(sorted(merged.items())), "at": now()}
    catalog.set_meta(NODES_META, json.dumps(allnodes, sort_keys=True))


def nodes_summary(counts: dict[str, int], what: str = "clips") -> str:
    """`ray: 2 nodes: 127.0.0.2 21 clips, 127.0.0.3 19 clips` (the line a Ray run prints)."""
    if not counts:
        return "ray: no node finished any work"
    parts = ", ".join(f"{node} {n} {what}" for node, n in sorted(counts.items()))
    return f"ray: {len(counts)} node{'s' if len(counts) != 1 else ''}: {parts}"
