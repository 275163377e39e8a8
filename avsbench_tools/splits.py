"""Leak-free splits, assigned once per workspace and stored in the catalog (clips.split) through its table
access for this module, `catalog/splits.py` (set_splits, fingerprints).

`ratio_split` (deterministic largest-remainder allocation in a seeded order) is shared with the
synthetic world's gold release; `assign_splits` draws a workspace's splits with it.

Clips are grouped before splitting: clips cut from one source video form one group, and
near-duplicates (frames with close perceptual hashes AND a close audio fingerprint, e.g. the same
recording uploaded twice) join the group of what they duplicate. Groups are split per category
(stratified; categories too rare to fill every split are pooled) by the recipe's ratios in a seeded, deterministic order. A group holding a clip that
already has a split sends its new clips there: adding clips never moves existing ones.
Ref-AVS: categories held out (recipe `unseen_categories` or --unseen) go to test_u; the other
test groups are test_s; null expressions of test clips are exported as test_n (the format's
`test_split` and `unseen_split` in avsbench_tools.formats).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from avsbench_tools.catalog import Fingerprint
from avsbench_tools.workspace import Workspace

FRAME_HASH_BITS = 10  # mean Hamming distance of the 64-bit frame dHashes
AUDIO_HASH_BITS = 0.25  # fraction of differing audio-fingerprint bits


def allocate(n: int, ratios: dict[str, float]) -> dict[str, int]:
    """Largest-remainder counts per split; every split with a ratio > 0 gets one item when n allows."""
    names = list(ratios)
    raw = {k: n * ratios[k] for k in names}
    counts = {k: int(raw[k]) for k in names}
    for k in sorted(names, key=lambda k: raw[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    positive = [k for k in names if ratios[k] > 0]
    if n >= len(positive):
        for k in positive:
            while counts[k] == 0:
                donor = max(names, key=lambda d: counts[d])
                counts[donor] -= 1
                counts[k] += 1
    return counts


def stable_order(ids: list[str], seed: int) -> list[str]:
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())


def ratio_split(ids: list[str], ratios: dict[str, float], seed: int) -> dict[str, str]:
    counts = allocate(len(ids), ratios)
    out: dict[str, str] = {}
    order = stable_order(ids, seed)
    pos = 0
    for split, k in counts.items():
        for i in order[pos:pos + k]:
            out[i] = split
        pos += k
    return out


def dhash(img: np.ndarray) -> int:
    """64-bit difference hash of an RGB frame (9x8 grey thumbnail, horizontal gradients)."""
    from PIL import Image

    g = np.asarray(Image.fromarray(img).convert("L").resize((9, 8), Image.BILINEAR), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def audio_fingerprint(logmel: np.ndarray) -> np.ndarray:
    """Bits of a clip's sound: does each of 16 mel bands get louder from one 0.24 s step to the next."""
    x = np.asarray(logmel, np.float32).reshape(-1, 64)  # [frames, 64]
    n = x.shape[0] // 24
    if n < 2:
        return np.zeros(0, bool)
    coarse = x[: n * 24].reshape(n, 24, 16, 4).mean(axis=(1, 3))  # [steps, 16 bands]
    return (np.diff(coarse, axis=0) > 0).ravel()


@dataclass
class _Print:
    clip_id: str
    frames: list[int]
    audio: np.ndarray


def _fingerprints(ws: Workspace, clip_ids: list[str]) -> dict[str, _Print]:
    """Fingerprints of sampled clips, computed once and cached in the catalog."""
    from PIL import Image

    cached = ws.catalog.fingerprints()
    out, new = {}, []
    for cid in clip_ids:
        r = cached.get(cid)
        if r is not None:
            bits = np.unpackbits(np.frombuffer(r.audio, np.uint8))[: r.n_audio].astype(bool)
            out[cid] = _Print(cid, list(r.frames), bits)
            continue
        rows = ws.catalog.frames(cid)
        a = ws.catalog.audio(cid)
        if not rows or a is None:
            continue
        frames = [dhash(np.asarray(Image.open(ws.path(r.path)).convert("RGB"))) for r in rows]
        out[cid] = _Print(cid, frames, audio_fingerprint(np.load(ws.path(a.logmel_path))))
        new.append(Fingerprint(cid, frames, np.packbits(out[cid].audio).tobytes(), int(out[cid].audio.size)))
    ws.catalog.save_fingerprints(new)
    return out


def near_duplicates(prints: dict[str, _Print]) -> list[tuple[str, str]]:
    """Pairs of clips whose frames AND audio are near-identical (vectorised over all pairs)."""
    ids = sorted(prints)
    if len(ids) < 2:
        return []
    n_f = min(len(prints[i].frames) for i in ids)
    if n_f == 0:
        return []
    F = np.array([prints[i].frames[:n_f] for i in ids], dtype=np.uint64)  # [n, frames]
    pairs = []
    for i in range(len(ids) - 1):
        d = np.bitwise_count(F[i + 1:] ^ F[i]).mean(axis=1)
        for j in np.nonzero(d <= FRAME_HASH_BITS)[0] + i + 1:
            pa, pb = prints[ids[i]], prints[ids[j]]
            m = min(pa.audio.size, pb.audio.size)
            if m and np.mean(pa.audio[:m] != pb.audio[:m]) > AUDIO_HASH_BITS:
                continue
            pairs.append((ids[i], ids[j]))
    return pairs


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def split_state(ws: Workspace) -> tuple[int, int | None]:
    """(how many clips already have a split, the seed the splits were assigned with or None).

    Splits never move once assigned, so a seed given later only reaches clips without a split.
    """
    fixed = sum(n for split, n in ws.catalog.split_counts().items() if split != "none")
    stored = ws.catalog.meta().get("split_seed")
    try:
        seed = int(stored) if stored is not None else None
    except ValueError:
        seed = None
    return int(fixed), seed


def assign_splits(ws: Workspace, seed: int = 0, unseen: list[str] | None = None) -> dict[str, int]:
    """Give every clip without a split one; returns the count of clips per split (all clips)."""
    recipe = ws.recipe
    clips = ws.catalog.clips()
    sources = {s.source_id: s for s in ws.catalog.sources()}
    uf = _UnionFind()
    for c in clips:
        src = sources.get(c.source_id)
        uf.union(c.clip_id, "video:" + ((src.video_id if src and src.video_id else None) or c.source_id))
    prints = _fingerprints(ws, [c.clip_id for c in clips])
    dup_pairs = near_duplicates(prints)
    for a, b in dup_pairs:
        uf.union(a, b)
    groups: dict[str, list] = defaultdict(list)
    for c in clips:
        groups[uf.find(c.clip_id)].append(c)
    fmt = recipe.release_format
    held_out = set(unseen if unseen is not None else recipe.unseen_categories)
    assign: dict[str, str] = {}
    new_groups: dict[str, list[str]] = defaultdict(list)  # category -> group keys
    for key, members in groups.items():
        fixed = sorted({c.split for c in members if c.split})
        if fixed:
            for c in members:
                if not c.split:
                    assign[c.clip_id] = fixed[0]
            continue
        cats = sorted({c.category or "" for c in members})
        if fmt.unseen_split and held_out & set(cats):
            for c in members:
                assign[c.clip_id] = fmt.unseen_split
            continue
        new_groups[cats[0]].append(key)
    ratios = dict(recipe.splits)
    # strata: each category with enough groups to fill every split; the rare ones pooled together
    min_size = int(np.ceil(1 / min(r for r in ratios.values() if r > 0)))
    strata: dict[str, list[str]] = defaultdict(list)
    for cat, keys in new_groups.items():
        strata[cat if len(keys) >= min_size else "(rare categories)"].extend(keys)
    for cat in sorted(strata):
        for key, split in ratio_split(strata[cat], ratios, seed).items():
            for c in groups[key]:
                assign[c.clip_id] = fmt.split_name(split)
    ws.catalog.set_splits(assign, seed=seed)
    return ws.catalog.split_counts()
