"""A baseline run folder: its files, the CSV log and the PNG of the curves.

    RUN/.avs-tools-output   marker (kind baseline-run): RUN is a run avs-tools wrote
    RUN/run.json            release, setting, options, model config, warnings
    RUN/last.pt             the checkpoint after the last finished epoch (+ optimiser, RNG, history): --resume
    RUN/best.pt             the epoch with the best validation mIoU (what eval and predict use by default)
    RUN/epochs/epoch_NNN.pt every epoch's checkpoint (with --keep-epochs)
    RUN/log.csv             one row per epoch: losses, validation mIoU and F, seconds
    RUN/curves.png          the losses and the validation mIoU per epoch
    RUN/predictions/<split> what `baseline eval` wrote (masks in the release's layout, logits.npz)
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import atomic_write_bytes, atomic_write_text, read_marker

KIND = "baseline-run"
FILES = ("run.json", "last.pt", "best.pt", "log.csv", "curves.png")  # what every run writes (claimed first)
COLUMNS = ("epoch", "train_loss", "main_loss", "avm_loss", "val_miou", "val_fscore", "seconds", "best")


def read_run(run: Path) -> dict:
    """run.json of a run folder; one-line UsageError when RUN is not a baseline run."""
    run = Path(run)
    if not run.is_dir():
        raise UsageError(f"RUN {run}: no such folder (a folder written by avs-tools baseline train)")
    marker = read_marker(run)
    if marker is None or marker.get("kind") != KIND or not (run / "run.json").is_file():
        raise UsageError(f"RUN {run}: not a baseline run (no run.json written by avs-tools baseline train)")
    try:
        return json.loads((run / "run.json").read_text(encoding="utf-8"))
    except ValueError:
        raise UsageError(f"RUN {run}: run.json is not readable JSON") from None


def write_run(run: Path, info: dict) -> None:
    atomic_write_text(Path(run) / "run.json", json.dumps(info, indent=1, sort_keys=True) + "\n")


def write_csv(run: Path, history: list[dict]) -> None:
    """log.csv, rewritten whole (atomically) after every epoch."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for h in history:
        w.writerow(["" if h.get(c) is None else (f"{h[c]:.6f}" if isinstance(h[c], float) else h[c])
                    for c in COLUMNS])
    atomic_write_text(Path(run) / "log.csv", buf.getvalue())


def write_curves(run: Path, history: list[dict], title: str) -> None:
    """curves.png: training losses (left) and validation mIoU / F (right) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    if any(h.get("avm_loss") for h in history):
        a.plot(ep, [h["train_loss"] for h in history], "o-", label="total loss")
        a.plot(ep, [h["main_loss"] for h in history], "s--", label="main loss (BCE/CE)")
        a.plot(ep, [h["avm_loss"] for h in history], "^:", label="AVM loss")
    else:  # no AVM loss: the total is the main loss
        a.plot(ep, [h["main_loss"] for h in history], "s-", label="loss (BCE/CE; no AVM)")
    a.set_xlabel("epoch")
    a.set_xlim(0.5, max(ep) + 0.5)
    a.set_ylabel("training loss (epoch mean)")
    a.legend(fontsize=8)
    a.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    val = [(h["epoch"], h["val_miou"], h.get("val_fscore")) for h in history if h.get("val_miou") is not None]
    if val:
        b.plot([v[0] for v in val], [v[1] for v in val], "o-", color="#2a7", label="val mIoU")
        b.plot([v[0] for v in val], [v[2] for v in val], "s--", color="#a72", label="val F (batch-free)")
        best = max(val, key=lambda v: v[1])
        b.annotate(f"best {best[1]:.3f}", (best[0], best[1]), textcoords="offset points", xytext=(0, 8),
                   ha="center", fontsize=8)
        b.legend(fontsize=8)
    else:
        b.text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=b.transAxes)
    b.set_ylim(0, 1)
    b.set_xlim(0.5, max(ep) + 0.5)
    b.set_xlabel("epoch")
    b.set_ylabel("validation score")
    b.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(Path(run) / "curves.png", buf.getvalue())
