"""The export stage's options (`ExportOptions`, what `avs-tools export` sets)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ExportOptions:
    fmt: str | None = None  # the release format; None: the recipe's
    split: str | None = None  # export only this split (Ref-AVS test = test_s + test_u)
    include_unreviewed: bool = False  # the latest proposal where no review exists (the card says so)
    force: bool = False  # replace OUT when it is a release avs-tools exported before
    seed: int | None = None  # split seed for clips without a split; None: the workspace's (0 for a first export)
    unseen: list[str] | None = None  # Ref-AVS: categories held out of train for test_u
    negative_audio: list[str] | None = None  # also write negative-audio copies of the test clips: these kinds
    negative_seed: int | None = None  # their seed; None: the split seed
