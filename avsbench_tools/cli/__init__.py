"""The `avs-tools` command. Each stage's file only parses options and calls one library function.

Nothing heavy is imported here: `avs-tools --help` must stay fast and must not import torch.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer >= 0.20 vendors click as typer._click; older versions use click itself
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx

from avsbench_tools import __version__
from avsbench_tools.errors import AvsError, Interrupted

#: `avs-tools --help` lists the commands in the order of the pipeline, not in import order.
PIPELINE = ("init", "status", "clips", "backup", "synth", "collect", "set-category", "sample", "preview", "preannotate",
            "models", "studio", "push", "pull", "qa", "export", "validate", "stats", "evaluate",
            "baseline", "release-check", "publish", "unpublish")


class PipelineGroup(TyperGroup):
    """Lists its commands in PIPELINE order; any other command (a plugin, a test's) after them."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        order = {name: i for i, name in enumerate(PIPELINE)}
        return sorted(names, key=lambda n: (order.get(n, len(PIPELINE)), names.index(n)))


class Command(TyperCommand):
    """A command whose arguments read the usual way: `Usage: avs-tools preview [OPTIONS] WORKSPACE`
    (typer's own style is `{workspace}`), and the same upper-case names under Arguments and in errors."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for p in self.params:
            if p.param_type_name == "argument" and p.metavar is None:
                p.metavar = p.name.upper()

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if p.param_type_name != "argument":
                pieces.extend(p.get_usage_pieces(ctx))
                continue
            name = p.metavar or p.name.upper()
            name = name if p.required else f"[{name}]"
            pieces.append(name + ("..." if p.nargs != 1 else ""))
        return pieces


class App(typer.Typer):
    """typer.Typer whose commands are `Command`s and whose groups list them in pipeline order."""

    def __init__(self, **kwargs):
        kwargs.setdefault("cls", PipelineGroup)
        kwargs.setdefault("add_completion", False)
        kwargs.setdefault("pretty_exceptions_enable", False)
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, *, cls=None, **kwargs):
        return super().command(name, cls=cls or Command, **kwargs)


app = App(
    name="avs-tools",
    help="Build audio-visual segmentation datasets (AVSBench S4/MS3/AVSS, Ref-AVS): "
    "collect -> sample -> preannotate -> studio -> export, and check them with the TPAVI baseline.",
    no_args_is_help=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"avs-tools {__version__}")
        raise typer.Exit()


_DEBUG = {"on": False}


def _debug(value: bool) -> None:
    if value:
        _DEBUG["on"] = True


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False,
          debug: Annotated[bool, typer.Option("--debug", callback=_debug, is_eager=True,
                                              help="Print the full traceback of an error (also "
                                                   "AVS_TOOLS_DEBUG=1).")] = False) -> None:
    """avs-tools: one workspace, one pipeline."""


# Each stage's file registers its commands (the help lists them in PIPELINE order, whatever the order here).
from avsbench_tools.cli import backup as _backup  # noqa: E402,F401
from avsbench_tools.cli import baseline as _baseline  # noqa: E402,F401
from avsbench_tools.cli import clips as _clips  # noqa: E402,F401
from avsbench_tools.cli import collect as _collect  # noqa: E402,F401
from avsbench_tools.cli import evaluate as _evaluate  # noqa: E402,F401
from avsbench_tools.cli import export as _export  # noqa: E402,F401
from avsbench_tools.cli import init as _init  # noqa: E402,F401
from avsbench_tools.cli import models as _models  # noqa: E402,F401
from avsbench_tools.cli import preannotate as _preannotate  # noqa: E402,F401
from avsbench_tools.cli import preview as _preview  # noqa: E402,F401
from avsbench_tools.cli import publish as _publish  # noqa: E402,F401
from avsbench_tools.cli import pull as _pull  # noqa: E402,F401
from avsbench_tools.cli import push as _push  # noqa: E402,F401
from avsbench_tools.cli import qa as _qa  # noqa: E402,F401
from avsbench_tools.cli import release_check as _release_check  # noqa: E402,F401
from avsbench_tools.cli import sample as _sample  # noqa: E402,F401
from avsbench_tools.cli import set_category as _set_category  # noqa: E402,F401
from avsbench_tools.cli import stats as _stats  # noqa: E402,F401
from avsbench_tools.cli import status as _status  # noqa: E402,F401
from avsbench_tools.cli import studio as _studio  # noqa: E402,F401
from avsbench_tools.cli import synth as _synth  # noqa: E402,F401
from avsbench_tools.cli import unpublish as _unpublish  # noqa: E402,F401
from avsbench_tools.cli import validate as _validate  # noqa: E402,F401


def _debugging() -> bool:
    return _DEBUG["on"] or os.environ.get("AVS_TOOLS_DEBUG", "") not in ("", "0")


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 2 for usage errors, 1 for other failures, 130 when
    interrupted; one line, never a traceback (unless --debug / AVS_TOOLS_DEBUG=1)."""
    _DEBUG["on"] = False
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
    except Interrupted as exc:
        if _debugging():
            raise
        typer.echo(str(exc), err=True)
        return 130
    except AvsError as exc:
        if _debugging():
            raise
        typer.echo(f"avs-tools: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        if _debugging():
            raise
        typer.echo("interrupted; finished work is kept: run the same command to resume", err=True)
        return 130
    except OSError as exc:  # a path problem the command did not foresee: still one line
        if _debugging():
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        typer.echo(f"avs-tools: error: {where}{exc.strerror or exc}", err=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last guard: a bug, reported in one line
        if _debugging():
            raise
        damaged = _damaged_catalog(exc)
        if damaged:
            typer.echo(f"avs-tools: error: {damaged}", err=True)
            return 2
        typer.echo(f"avs-tools: internal error: {type(exc).__name__}: {exc} "
                   "(run again with --debug for the traceback, and report it)", err=True)
        return 1
    if rv == 130:  # typer turns a Ctrl-C that no stage handled into a silent 130: say what happened
        typer.echo("interrupted; finished work is kept: run the same command to resume", err=True)
    return rv if isinstance(rv, int) else 0


def _damaged_catalog(exc: Exception) -> str | None:
    """One line for an SQLite error that says the catalog file is damaged (a page overwritten), naming it."""
    import sqlite3

    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    from avsbench_tools.catalog.connection import is_damage, last_opened

    if not is_damage(exc):
        return None
    where = str(last_opened[0]) if last_opened else "the catalog"
    return (f"{where} is damaged ({exc}); restore it from a backup (avs-tools backup makes one; the workspace's "
            "backups/ folder holds the copies made before schema upgrades)")


def _sigterm(signum, frame):  # pragma: no cover - exercised through subprocess tests
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)  # `kill PID` stops like Ctrl-C: finished work recorded
    sys.exit(run())
