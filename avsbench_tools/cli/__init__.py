"""The `avs-tools` command. Each stage's file only parses options and calls one library function.

Nothing heavy is imported here: `avs-tools --help` must stay fast and must not import torch.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.20 vendors click as typer._click; older versions use click itself
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx

from avsbench_tools import __version__
from avsbench_tools.errors import AvsError

app = typer.Typer(
    name="avs-tools",
    help="Build audio-visual segmentation datasets (AVSBench S4/MS3/AVSS, Ref-AVS): "
    "collect -> sample -> preannotate -> studio -> export, and check them with the TPAVI baseline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"avs-tools {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """avs-tools: one workspace, one pipeline."""


# Each stage registers its commands, in pipeline order.
from avsbench_tools.cli import collect as _collect  # noqa: E402,F401
from avsbench_tools.cli import preannotate as _preannotate  # noqa: E402,F401
from avsbench_tools.cli import release as _release  # noqa: E402,F401
from avsbench_tools.cli import sample as _sample  # noqa: E402,F401
from avsbench_tools.cli import synth as _synth  # noqa: E402,F401
from avsbench_tools.cli import workspace as _workspace  # noqa: E402,F401


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 2 for usage errors, 1 for other failures, never a traceback."""
    try:
        rv = app(args=argv, prog_name="avs-tools", standalone_mode=False)
    except _cx.UsageError as exc:
        exc.show()
        return 2
    except typer.Abort:
        typer.echo("avs-tools: aborted", err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except AvsError as exc:
        typer.echo(f"avs-tools: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("avs-tools: interrupted (finished work is kept; run the same command again)", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


def main() -> None:
    sys.exit(run())
