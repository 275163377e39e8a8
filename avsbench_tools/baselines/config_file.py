"""Training options from a TOML file (`baseline train --config baselines/ms3.toml`) and the command line.

The files in the repository's `baselines/` folder hold the official defaults per setting; any key of
`TrainOptions` may be set. A value given on the command line wins over the file; what neither gives
keeps TrainOptions' default (which, for epochs and the AVM loss, is the official one of the setting).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tomllib

from avsbench_tools.errors import UsageError

RUNTIME_ONLY = ("device", "amp", "channels_last", "no_audio", "keep_epochs", "resume", "force")


def read_config(path: Path) -> dict:
    """The options of a TOML file (one-line errors naming the file and the bad key)."""
    from avsbench_tools.baselines.train import TrainOptions

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--config {path}: no such file")
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: not valid TOML ({exc})") from None
    d.pop("setting", None)  # informative: the setting is an option of the command
    fields = {f.name: f for f in dataclasses.fields(TrainOptions)}
    for k, v in d.items():
        if k not in fields or k in ("resume", "force"):
            raise UsageError(f"--config {path}: unknown option {k!r} (known: {', '.join(sorted(fields))})")
        if k in ("visual_weights", "vggish_weights") and v is not None:
            d[k] = Path(v)
        if k == "tpavi_stages":
            d[k] = tuple(int(s) for s in v)
    return d


def merge_options(config: Path | None, given: dict, **runtime):
    """TrainOptions from the file (if any), then the options given on the command line, then runtime flags."""
    from avsbench_tools.baselines.train import TrainOptions

    values = read_config(config) if config is not None else {}
    values.update(given)
    defaults = TrainOptions()
    for k, v in runtime.items():  # a flag left at its default does not undo the file's value
        if v != getattr(defaults, k) or k not in values:
            values[k] = v
    return TrainOptions(**values)
