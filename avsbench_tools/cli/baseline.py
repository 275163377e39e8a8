"""avs-tools baseline train / eval / predict / describe.

Options only: the work is in avsbench_tools.baselines (train, eval, predict, describe). Nothing heavy is
imported at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from avsbench_tools.cli import App, app
from avsbench_tools.cli.common import (
    Backbone,
    Device,
    Json,
    Quiet,
    ReleaseArg,
    Vggish,
    Visual,
    print_json,
    q,
    say_next,
    warn,
)

baseline_app = App(cls=TyperGroup, help="The bundled TPAVI baseline (AVSBench): train it on an export, score it, "
                   "run a checkpoint on a release, count its parameters.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline",
              short_help="Train / score the TPAVI baseline.  e.g. avs-tools baseline train rel --setting ms3 --out run")

Setting = Annotated[str, typer.Option("--setting", help="s4, ms3 or avss (the release layout it reads).")]
@baseline_app.command(short_help="Train on an exported release.  e.g. avs-tools baseline train rel --setting ms3 --out run")
def train(
    release: ReleaseArg,
    setting: Setting,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, log.csv, curves.png).")],
    config: Annotated[Path | None, typer.Option("--config", help="A TOML file of options (baselines/<setting>.toml "
                                                "holds the official defaults); the command line overrides it.")] = None,
    backbone: Backbone = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (official: S4 15, MS3 30, AVSS 60).")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Videos per batch (official 4).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate (official 1e-4).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the weights and the data order (official 123).")] = None,
    device: Device = "auto",
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA.")] = True,
    channels_last: Annotated[bool, typer.Option("--channels-last/--no-channels-last",
                                                help="Channels-last inputs on CUDA.")] = True,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Zero the audio features (the paper's audio-impact "
                                           "check; no AVM loss then).")] = False,
    avm: Annotated[bool | None, typer.Option("--avm/--no-avm", help="The AVM loss (official: on for MS3/AVSS, off "
                                             "for S4).", show_default=False)] = None,
    visual_weights: Visual = None,
    vggish_weights: Vggish = None,
    input_size: Annotated[int | None, typer.Option("--input-size", help="Frames resized to this (multiple of 32) "
                                                   "before the model; logits upsampled to 224 (CPU sanity runs; "
                                                   "official 224).")] = None,
    channels: Annotated[int | None, typer.Option("--channels", help="ASPP/TPAVI/decoder width (official 256).")] = None,
    tpavi_lr_mult: Annotated[float | None, typer.Option("--tpavi-lr-mult", help="TPAVI blocks learn at lr x this "
                                                        "(official 1; short sanity runs: 10 opens TPAVI's "
                                                        "zero-initialised gate sooner).")] = None,
    max_train_clips: Annotated[int | None, typer.Option("--max-train-clips", help="Train on this many clips spread "
                                                        "over the train split.")] = None,
    val_from: Annotated[int | None, typer.Option("--val-from", help="First epoch validated (official AVSS 16).")] = None,
    val_every: Annotated[int | None, typer.Option("--val-every", help="Validate every N epochs (AVSS 2).")] = None,
    max_seconds: Annotated[float | None, typer.Option("--max-seconds", help="Stop before an epoch that would end "
                                                      "after this many seconds.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Data-loading processes (0: in the main one).")] = None,
    keep_epochs: Annotated[bool, typer.Option("--keep-epochs", help="Keep every epoch's checkpoint "
                                              "(epochs/epoch_NNN.pt), not only last.pt and best.pt.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last.pt.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Start over: replace an earlier run in --out (only a folder "
                                        "baseline train wrote, holding nothing else; the new run is swapped in when "
                                        "it ends, so Ctrl-C keeps the earlier one).")] = False,
    quiet: Quiet = False,
) -> None:
    """Train the TPAVI baseline on RELEASE's train split (read through the official layout only), validate
    on val every epoch; best.pt is the epoch with the best validation mIoU."""
    from avsbench_tools.baselines.config_file import merge_options
    from avsbench_tools.baselines.train import train as run
    from avsbench_tools.cli.bars import bars

    given = {"backbone": backbone, "epochs": epochs, "batch": batch, "lr": lr, "seed": seed, "avm": avm,
             "visual_weights": visual_weights, "vggish_weights": vggish_weights, "input_size": input_size,
             "channels": channels, "tpavi_lr_mult": tpavi_lr_mult, "max_train_clips": max_train_clips,
             "val_from": val_from, "val_every": val_every,
             "max_seconds": max_seconds, "workers": workers}
    opts = merge_options(config, {k: v for k, v in given.items() if v is not None},
                         device=device, amp=amp, channels_last=channels_last, no_audio=no_audio,
                         keep_epochs=keep_epochs, resume=resume, force=force)
    with bars(quiet) as progress:
        res = run(release, setting, out, opts, progress=progress, warn=lambda w: warn([w]))
    warn(res.warnings)  # again at the end, where it is seen
    why = f"; stopped at the {res.stopped}" if res.stopped else ""
    best = f"best val mIoU {res.best_miou:.4f} at epoch {res.best_epoch}" if res.best_miou is not None else "not validated"
    since = f" (resumed after epoch {res.resumed_from})" if res.resumed_from else ""
    typer.echo(f"baseline train: {setting} {res.epochs_done}/{res.epochs} epochs{since}, {best}{why} -> {out} "
               f"(log.csv, curves.png, best.pt, last.pt)")
    say_next(f"avs-tools baseline eval {q(out)} --split test", quiet)


@baseline_app.command(name="eval", short_help="Official metrics of a run on a split.  e.g. avs-tools baseline eval run --split test")
def eval_(
    run: Annotated[Path, typer.Argument(metavar="RUN", show_default=False, help="A folder baseline train wrote.")],
    split: Annotated[str, typer.Option("--split", help="Split to score.")] = "test",
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", help="best (default), last, or a checkpoint "
                                                   "file.")] = None,
    vggish_weights: Vggish = None,
    device: Device = "auto",
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Predict SPLIT with the run's checkpoint into RUN/predictions/SPLIT (the release's mask layout) and score
    those files with `avs-tools evaluate`'s code; --json prints the same keys as `evaluate --json`."""
    from avsbench_tools.baselines.eval import evaluate_run
    from avsbench_tools.cli.bars import bars

    with bars(quiet or as_json) as progress:
        res = evaluate_run(run, split, checkpoint, device, vggish_weights, progress)
    warn(res.warnings)
    if print_json(res.scores, as_json):
        return
    s = res.scores
    typer.echo(f"baseline eval: {s['format']} {'/'.join(s['splits'])}: {s['frames']} frames ({s['clips']} clips), "
               f"checkpoint {res.checkpoint.name}; predictions in {res.predictions}")
    _scores(s, res.official_float, s["format"], f" -> {Path(run) / f'eval_{split}.json'}")
    say_next(f"avs-tools evaluate --format {s['format']} --gt {q(res.release)} --pred {q(res.predictions)} "
             f"--split {split}", quiet)


def _scores(saved: dict, floats: dict | None, fmt: str, where: str = "") -> None:
    """evaluate's lines for the saved masks, then the float-logit figures under their own protocol's name."""
    from avsbench_tools.baselines.eval import FLOAT_PROTOCOL
    from avsbench_tools.cli.evaluate import metric_lines

    for line in metric_lines(saved):
        typer.echo(line)
    if floats:
        setting = {"avsbench-s4": "s4", "avsbench-ms3": "ms3"}.get(fmt, "avss")
        typer.echo(f"  {FLOAT_PROTOCOL[setting]}: mIoU {floats['miou']:.4f}, F {floats['fscore']:.4f}{where}")


@baseline_app.command(short_help="Run a checkpoint on a release.  e.g. avs-tools baseline predict rel --checkpoint "
                      "S4_best.pth --setting s4 --out preds")
def predict(
    release: ReleaseArg,
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="Ours (best.pt/last.pt) or an officially released "
                                             "TPAVI checkpoint (module. prefix and layout handled).")],
    setting: Setting,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the masks (release layout) and logits.npz.")],
    split: Annotated[str, typer.Option("--split", help="Split to predict.")] = "test",
    vggish_weights: Vggish = None,
    device: Device = "auto",
    binary: Annotated[bool, typer.Option("--binary", help="S4/MS3: 0/255 masks instead of 8-bit "
                                         "probabilities.")] = False,
    all_logits: Annotated[bool, typer.Option("--all-logits", help="AVSS: store every class's logits "
                                             "(large).")] = False,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Zero the audio features.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace earlier predictions in --out (only a folder "
                                        "baseline predict wrote, holding nothing else; swapped in when complete).")]
    = False,
    quiet: Quiet = False,
) -> None:
    """Predicted masks at the release's own mask paths (every frame of the split; S4/MS3: 8-bit probabilities,
    AVSS: class maps at the frame's size) and logits.npz: per video name one float32 [frames, 224, 224] array
    of logits before the sigmoid (AVSS: the winning class's logit, and <name>__class the class map)."""
    from avsbench_tools.baselines.predict import PredictOptions
    from avsbench_tools.baselines.predict import predict as run
    from avsbench_tools.cli.bars import bars

    opts = PredictOptions(checkpoint=checkpoint, split=split, vggish_weights=vggish_weights, device=device,
                          binary=binary, all_logits=all_logits, no_audio=no_audio, force=force)
    with bars(quiet) as progress:
        res = run(release, setting, out, opts, progress=progress)
    warn(res.warnings)
    typer.echo(f"baseline predict: {res.clips} clips of {split} ({res.predicted} predicted, {res.skipped} already "
               f"there) -> {res.out} (masks in the release layout, {res.logits.name})")
    from avsbench_tools.baselines.dataset import setting_format
    from avsbench_tools.baselines.eval import score_saved

    saved, why = score_saved(release, setting, res.out, split)  # what `avs-tools evaluate` of OUT prints
    if saved is not None:
        typer.echo(f"  scored as avs-tools evaluate scores these files ({saved['frames']} frames, {saved['clips']} "
                   f"clips):")
        _scores(saved, res.scores, setting_format(setting))
    else:
        typer.echo(f"  not scored: {why}")

    say_next(f"avs-tools evaluate --format {setting_format(setting)} --gt {q(release)} --pred {q(out)} "
             f"--split {split}", quiet)


@baseline_app.command(short_help="Parameter counts.  e.g. avs-tools baseline describe --backbone pvt_v2_b5")
def describe(
    backbone: Annotated[str, typer.Option("--backbone", help="resnet50, pvt_v2_b5, resnet18 or resnet18-w16.")] = "resnet50",
    setting: Annotated[str, typer.Option("--setting", help="s4, ms3 or avss.")] = "s4",
    classes: Annotated[int | None, typer.Option("--classes", help="Output classes (default 1, AVSS 71).")] = None,
    as_json: Json = False,
) -> None:
    """Parameters per part of the model, beside what the official AVSBench class registers."""
    from avsbench_tools.baselines.describe import describe as rows_of

    rows = rows_of(backbone, setting, classes)
    if print_json([{"part": n, "parameters": c, "official": o} for n, c, o in rows], as_json):
        return
    typer.echo(f"{'part':<40} {'parameters':>14} {'official class':>16}")
    for name, count, official in rows:
        shown = "-" if official is None else f"{official:,}"
        typer.echo(f"{name:<40} {count:>14,} {shown:>16}")
