"""Deterministic ratio allocation shared by the synthetic gold release and export's splitter."""

from __future__ import annotations

import hashlib


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
