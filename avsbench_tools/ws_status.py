"""What `avs-tools status` and `avs-tools clips` report of a workspace (read-only: they never wait for a stage).

Per stage: done / failed / pending (the "pull" stage counted by the completeness rule, `completeness.py`), the
failure ledger, and the work per node of Ray runs; per clip: its source, length, split and stage states. Kept
apart from `workspace.py` (opening, creating and locking a workspace), which every stage and completeness.py
build on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from avsbench_tools.catalog import STAGES
from avsbench_tools.workspace import open_workspace


def source_name(kind: str | None, url: str | None, path: str | None, title: str | None) -> str:
    """How a source is shown: its URL, or for a local file its file name only (never an absolute path)."""
    if kind == "local" or (url or "").startswith("file:"):
        if path:
            return Path(path).name
        if url:
            from urllib.parse import unquote, urlparse

            return Path(unquote(urlparse(url).path)).name
        return Path(title or "").name
    return url or title or ""


def retryable(f) -> bool:
    if f.permanent:
        return False
    try:
        payload = json.loads(f.payload) if f.payload else {}
    except ValueError:
        payload = {}
    return not (isinstance(payload, dict) and payload.get("kind") == "rejected")


def workspace_status(root: Path, stages: Iterable[str] | None = None) -> dict:
    """The machine-readable status: {"recipe", "clips", "stages": {stage: {done, failed, pending}}, "failures",
    "nodes"} (nodes: the work per node of the Ray engine's runs, {stage: {"nodes": {node: items}, "at"}}).

    `stages`: the stages to report (default: every stage the catalog knows). Each failure is
    {stage, item, source, reason, attempts, retryable}."""
    ws = open_workspace(root)
    try:
        cat = ws.catalog
        counts = cat.stage_counts()
        names = {s.source_id: source_name(s.kind, s.url, s.path, s.title) for s in cat.sources()}
        clip_src = {c.clip_id: names.get(c.source_id, c.source_id) for c in cat.clips()}
        fails = [
            {"stage": f.stage, "item": f.item, "source": names.get(f.item) or clip_src.get(f.item) or "",
             "reason": f.reason, "attempts": f.attempts, "retryable": retryable(f)}
            for f in cat.failures()
        ]
        wanted = [s for s in STAGES if stages is None or s in set(stages)]
        if "pull" in wanted:
            from avsbench_tools.completeness import pull_counts

            counts["pull"] = pull_counts(ws, len(clip_src))
        from avsbench_tools.engine.nodes import read_nodes

        return {"recipe": ws.recipe.name, "clips": len(clip_src), "stages": {s: counts[s] for s in wanted},
                "failures": fails, "nodes": read_nodes(cat.meta())}  # Ray runs: {stage: {nodes: {node: n}}}
    finally:
        ws.close()


def list_clips(root: Path, stages: Iterable[str] | None = None) -> list[dict]:
    """[{clip, category, source, seconds, split, stages: {stage: done|failed|pending}}] by clip id."""
    ws = open_workspace(root)
    try:
        cat = ws.catalog
        wanted = [s for s in STAGES if stages is None or s in set(stages)]
        state = {(st.clip_id, st.stage): st.status for st in cat.stage_states()}
        if "pull" in wanted:  # the completeness rule, as status counts it
            from avsbench_tools.completeness import pull_states

            state.update({(c, "pull"): v for c, v in pull_states(ws).items()})
        sources = {s.source_id: s for s in cat.sources()}
        out = []
        for c in cat.clips():
            s = sources.get(c.source_id)
            out.append({"clip": c.clip_id, "category": c.category,
                        "source": source_name(s.kind, s.url, s.path, s.title) if s else "",
                        "start": c.start, "seconds": c.seconds, "split": c.split,
                        "stages": {st: "done" if st == "collect" else state.get((c.clip_id, st), "pending")
                                   for st in wanted}})
        return out
    finally:
        ws.close()
