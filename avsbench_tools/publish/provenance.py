"""What the workspace catalog knows of a release's clips: licence, source, and how each frame's mask was made.

The release tree holds masks only; which were reviewed by people, by whom, how far the review moved
the proposal (QA IoU) and which backend and checkpoint proposed them live in the catalog. A release
clip is matched to its catalog clip by the name export gave it (`export.release_names`).
"""

from __future__ import annotations

from pathlib import Path

from avsbench_tools.publish.tables import ClipInfo, Provenance


def checkpoint_of(settings: dict) -> str | None:
    """'id@sha256' of the checkpoints named in a mask set's settings (grounded-sam: dino+sam), or None."""
    parts = []
    for key in ("dino", "sam", "sam2", "sam3"):
        m = settings.get(key)
        if isinstance(m, dict) and (m.get("id") or m.get("sha256")):
            parts.append(f"{m.get('id') or key}@{m.get('sha256') or '?'}")
    return ", ".join(parts) or None


def clip_info(ws, rel, top: Path) -> dict[str, ClipInfo]:
    """{release clip id: ClipInfo} for the clips of `rel` the workspace `ws` exported."""
    from avsbench_tools.export import public_source, release_names

    sampled = set(ws.catalog.clip_ids_done("sample"))
    clips = [c for c in ws.catalog.clips() if c.clip_id in sampled]  # what export names (and numbers) from
    sources = {s.source_id: s for s in ws.catalog.sources()}
    names = release_names(clips, sources, rel.fmt)
    wanted = {it.frames[0].parent.parent.name if rel.fmt == "ref-avs" else it.name for it in rel.items}
    by_name = {}
    for c in clips:
        for n in _candidates(c, names.get(c.clip_id), sources.get(c.source_id)):
            if n in wanted:
                by_name[n] = c
            if rel.fmt == "ref-avs" and f"null_c-{n}" in wanted:
                by_name[f"null_c-{n}"] = c
    qa_iou = _qa_ious(ws, {c.clip_id for c in by_name.values()})
    annotators = _annotators(ws, {c.clip_id for c in by_name.values()})
    out = {}
    for name, c in by_name.items():
        s = sources.get(c.source_id)
        where, title = public_source(s) if s else (None, None)
        ci = ClipInfo(licence=(s.license if s else None) or "unknown", source_url=where or None, title=title or None)
        per_second: dict[int, list] = {}
        for v in ws.catalog.mask_versions(c.clip_id):
            per_second.setdefault(v.second, []).append(v)
        reviewed = ws.catalog.review_seconds(c.clip_id) or set()
        for sec, vs in per_second.items():
            kinds = {v.kind for v in vs}
            proposals = [v for v in vs if v.kind == "proposal"]
            src = "review" if sec in reviewed or kinds == {"review"} else "proposal"
            p = proposals[-1] if proposals else None
            ci.frames[sec] = Provenance(
                mask_source=src, annotators=sorted(annotators.get((c.clip_id, sec), ())),
                qa_iou=qa_iou.get((c.clip_id, sec)), backend=p.backend if p else None,
                checkpoint=checkpoint_of(p.settings or {}) if p else None)
        for sec in reviewed:
            ci.frames.setdefault(sec, Provenance(mask_source="review",
                                                 annotators=sorted(annotators.get((c.clip_id, sec), ()))))
        out[name] = ci
    return out


def _candidates(c, name: str | None, src) -> list[str]:
    """The names export may have given clip `c`: release_names' (S4, MS3, Ref-AVS, AVSS v1m) and the AVSS
    v1s/v2 uid <video>_<start_ms>_<end_ms> that masks_to_clip makes."""
    key = (src.video_id if src is not None and src.video_id else None) or (src.source_id if src else "unknown")
    s = int(round(float(c.start) * 1000))
    return [n for n in (name, f"{key}_{s}_{s + int(c.seconds) * 1000}") if n]


def _annotators(ws, clip_ids: set[str]) -> dict[tuple[str, int], set[str]]:
    out: dict[tuple[str, int], set[str]] = {}
    if not clip_ids:
        return out
    for r in ws.catalog.studio_reviews(sorted(clip_ids)):
        if r.submitted and r.annotator:
            out.setdefault((r.clip_id, r.second), set()).add(r.annotator)
    return out


def _qa_ious(ws, clip_ids: set[str]) -> dict[tuple[str, int], float]:
    """{(clip, second): IoU of the whole proposal with the whole reviewed mask} from the studio QA."""
    if not clip_ids or not ws.catalog.studio_reviews(sorted(clip_ids)):
        return {}
    from avsbench_tools.studio import qa_report as qa

    rep = qa(ws, most_changed=10**9)
    return {(c.clip_id, c.second): round(float(c.iou), 4) for c in rep.most_changed if c.clip_id in clip_ids}


def release_facts(ws, info: dict[str, ClipInfo], card: str) -> dict:
    """What the Croissant responsible-AI fields say: how clips were found, licences, how masks were made.

    From the catalog when `ws` is given; otherwise only what the release's own card says (its lines)."""
    frames = [p for ci in info.values() for p in ci.frames.values()]
    facts: dict = {"card_lines": [ln[2:] for ln in card.splitlines() if ln.startswith("- ")]}
    licences: dict[str, int] = {}
    for ci in info.values():
        licences[ci.licence or "unknown"] = licences.get(ci.licence or "unknown", 0) + 1
    facts["licences"] = licences
    facts["frames_known"] = len(frames)
    facts["frames_reviewed"] = sum(1 for p in frames if p.mask_source == "review")
    facts["annotators"] = sorted({a for p in frames for a in p.annotators})
    ious = [p.qa_iou for p in frames if p.qa_iou is not None]
    facts["qa_iou_mean"] = round(sum(ious) / len(ious), 4) if ious else None
    facts["qa_frames"] = len(ious)
    tools: dict[str, int] = {}
    for p in frames:
        if p.backend:
            key = f"{p.backend} ({p.checkpoint})" if p.checkpoint else p.backend
            tools[key] = tools.get(key, 0) + 1
    facts["machine_tools"] = tools
    if ws is not None:
        kinds: dict[str, int] = {}
        keywords: set[str] = set()
        for s in ws.catalog.sources():
            kinds[s.kind] = kinds.get(s.kind, 0) + 1
            if s.keyword:
                keywords.add(s.keyword)
        facts["source_kinds"] = kinds
        facts["keywords"] = sorted(keywords)
        facts["recipe"] = f"{ws.recipe.name} (digest {ws.recipe.digest})"
        facts["agreement"] = _agreement(ws) if facts["frames_reviewed"] else None
    return facts


def _agreement(ws) -> dict | None:
    """Agreement between annotators of the same frame (the studio QA's pairs of distinct annotators)."""
    from avsbench_tools.studio import qa_report as qa

    a = qa(ws, most_changed=0).agreement
    return {"frames": a.get("frames"), "pairs": a.get("pairs"), "mean_iou": a.get("mean_iou")}
