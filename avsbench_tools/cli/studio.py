"""avs-tools studio start / stop / status: the workspace's own local Label Studio server.

Also the shared `--url`/`--api-key` options (`StudioUrl`, `StudioApiKey`) of the commands that talk to
a server (push, pull): they feed `avsbench_tools.studio.connect.connect(ws, url, api_key)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from avsbench_tools.cli import App, app
from avsbench_tools.cli.common import WorkspaceArg, json_flag, print_json, q, say_next

StudioUrl = Annotated[str | None, typer.Option(
    "--url", help="Label Studio URL (default: $LABEL_STUDIO_URL, else the workspace's own server).")]
StudioApiKey = Annotated[str | None, typer.Option(
    "--api-key", help="Label Studio API key (prefer $LABEL_STUDIO_API_KEY: an option shows in `ps`).")]
StatusJson = json_flag('{"running", "url", "token_file"}')

studio_app = App(cls=TyperGroup,  # start, stop, status: in this order (not the pipeline's)
                 help="A local Label Studio server for the workspace (needs `make studio-install`).",
                 no_args_is_help=True)
app.add_typer(studio_app, name="studio",
              short_help="Run a local Label Studio for annotation.  e.g. avs-tools studio start ws")


def _check_workspace(workspace: Path) -> None:
    """A one-line error unless `workspace` is a workspace (no lock: the server does not write the catalog)."""
    from avsbench_tools.cli.common import stage_run

    with stage_run(workspace, quiet=True):
        pass


def _login_lines(info) -> None:
    typer.echo(f"  login: {info.username} (password in {info.credentials_file})")
    typer.echo(f"  API token: in {info.token_file} (readable by you only)")
    typer.echo(f"  log: {info.log_file}")


@studio_app.command(short_help="Start the workspace's Label Studio server (idempotent).")
def start(
    workspace: WorkspaceArg,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535,
                                             help="Port to listen on (default: a free one).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. 127.0.0.1 keeps the server on this "
                                      "machine; 0.0.0.0 opens it to the network.")] = "127.0.0.1",
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for the server to "
                                           "answer.")] = 300.0,
) -> None:
    """Start Label Studio for WORKSPACE in the background (data in WORKSPACE/studio/data), create its
    account on the first start, wait until its API answers, and print the URL and the login. The API
    token is written to WORKSPACE/studio/token (mode 0600) and never printed."""
    from avsbench_tools.studio.server import start_studio

    _check_workspace(workspace)
    shown = set()

    def progress(stage: str, done: int, total: int, info: str) -> None:
        if done == 0 and info not in shown:
            shown.add(info)
            typer.echo(info + " ...", err=True)

    info = start_studio(workspace, port=port, host=host, timeout=timeout, progress=progress)
    typer.echo(f"Label Studio is {'already running' if info.already_running else 'running'} at {info.url} "
               f"(pid {info.pid})")
    if info.host not in ("127.0.0.1", "localhost"):
        typer.echo(f"  note: listening on {info.host}: other machines can reach it", err=True)
    if info.orphan_pid is not None:
        typer.echo(f"  note: server.json named pid {info.orphan_pid}, a Label Studio serving another data folder "
                   "(not this workspace's): it was left running", err=True)
    _login_lines(info)
    say_next(f"avs-tools push {q(workspace)}")


@studio_app.command(short_help="Stop the workspace's Label Studio server (idempotent).")
def stop(workspace: WorkspaceArg) -> None:
    """Stop WORKSPACE's Label Studio (its whole process group). Its data, token and login are kept."""
    from avsbench_tools.studio.server import StudioPaths, stop_studio

    if not StudioPaths.of(workspace).root.is_dir():
        _check_workspace(workspace)
    typer.echo("stopped Label Studio" if stop_studio(workspace) else "Label Studio is not running")


@studio_app.command(short_help="Is the workspace's Label Studio running, and where.")
def status(workspace: WorkspaceArg, as_json: StatusJson = False) -> None:
    """Say whether WORKSPACE's Label Studio runs, its URL and where its token file is."""
    from avsbench_tools.studio.server import server_state, studio_status

    _check_workspace(workspace)
    st = studio_status(workspace)
    if print_json(st, as_json):
        return
    if st["running"]:
        typer.echo(f"Label Studio is running at {st['url']}")
        typer.echo(f"  API token: in {st['token_file']}")
        say_next(f"avs-tools push {q(workspace)}")
        return
    if st.get("moved_from"):
        typer.echo(f"Label Studio (pid {st['pid']}) was started when the workspace was at {st['moved_from']} and "
                   "cannot work from here: `avs-tools studio start` restarts it, `avs-tools studio stop` stops it")
        say_next(f"avs-tools studio start {q(workspace)}")
        return
    state = server_state(workspace)
    if state is not None:
        typer.echo(f"Label Studio is starting at {state['url']} (pid {state['pid']}, not answering yet)")
        return
    typer.echo("Label Studio is not running")
    if st.get("orphan_pid") is not None:
        typer.echo(f"  note: server.json names pid {st['orphan_pid']}, a Label Studio serving another data folder "
                   f"(not this workspace's): stop it with `kill {st['orphan_pid']}` if nothing else uses it")
    say_next(f"avs-tools studio start {q(workspace)}")
