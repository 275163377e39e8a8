"""The one progress-callback signature that every stage and reader takes.

`progress(stage, done, total, info)`: `stage` names the bar ("sampling", "exporting", ...), `done`
of `total` items are finished, `info` is a short free text (the current clip id). Library code only
calls it; the CLI draws the bars (`avsbench_tools.cli.bars.bars`).
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int, str], None]


def no_progress(stage: str, done: int, total: int, info: str = "") -> None:
    """The callback used when the caller passes none."""
