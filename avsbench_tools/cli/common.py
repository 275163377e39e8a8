"""What every command shares: option aliases, `stage_run` (workspace + progress bars), the closing
`next:` line and the short failure listing.

Options are declared once here as `Annotated` aliases and used as plain type hints, e.g.
`def sample(workspace: WorkspaceArg, quiet: Quiet = False)`; a command gives its own default
(`device: Device = "cpu"`) or none (`fmt: Format` is required). Nothing heavy is imported here:
every command file imports this module when `avs-tools --help` runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from avsbench_tools.workspace import Workspace

FMT_HELP = "avsbench-s4, avsbench-ms3, avss or ref-avs."
DINO_HELP = ("Grounding DINO: a transformers folder, a model id in the local HF cache, or an original "
             "groundingdino_*.pth (converted once and cached).")
SAM_HELP = "SAM: a transformers folder, a model id in the local HF cache, or a segment-anything .pth."
CLAP_HELP = "CLAP: a transformers folder or a model id in the local HF cache."
SAM2_HELP = "SAM 2 video checkpoint for --tracker sam2, e.g. facebook/sam2.1-hiera-tiny."

#: The one progress callback of every stage: progress(stage, done, total, info).
from avsbench_tools.progress import Progress as ProgressFn  # noqa: E402

# -- arguments ---------------------------------------------------------------------------------------
WorkspaceArg = Annotated[Path, typer.Argument(metavar="WORKSPACE", readable=False, show_default=False,
                                              help="Workspace folder (avs-tools init).")]
NewWorkspaceArg = Annotated[Path, typer.Argument(metavar="WORKSPACE", readable=False, show_default=False,
                                                 help="Workspace folder to create (new or empty).")]
ReleaseArg = Annotated[Path, typer.Argument(metavar="RELEASE", show_default=False, help="Release root.")]

# -- options -----------------------------------------------------------------------------------------
Quiet = Annotated[bool, typer.Option("--quiet", "-q",
                                     help="No progress bars and no next-step line (for scripts).")]
Device = Annotated[str, typer.Option("--device", help="Where models run: auto, cpu or cuda[:N].")]
Format = Annotated[str, typer.Option("--format", "-f", help=FMT_HELP)]
FormatOrMarker = Annotated[str | None, typer.Option("--format", "-f", help=FMT_HELP + " Default: the format the "
                                                    "release's marker names (a release avs-tools wrote).")]
FormatOrRecipe = Annotated[str | None, typer.Option("--format", "-f", help=FMT_HELP + " Default: the recipe's.")]
Clips = Annotated[list[str] | None, typer.Option("--clip", help="Only this clip id (repeatable).")]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="Try the items that failed before again.")]
AllowDownload = Annotated[bool, typer.Option("--allow-download", help="Let Hugging Face fetch missing checkpoints.")]
# checkpoints: the option, else its environment variable (typer's envvar=), else none
Dino = Annotated[str | None, typer.Option("--dino", envvar="AVS_TOOLS_DINO", show_envvar=True, help=DINO_HELP)]
Sam = Annotated[str | None, typer.Option("--sam", envvar="AVS_TOOLS_SAM", show_envvar=True, help=SAM_HELP)]
Clap = Annotated[str | None, typer.Option("--clap", envvar="AVS_TOOLS_CLAP", show_envvar=True, help=CLAP_HELP)]
Sam2 = Annotated[str | None, typer.Option("--sam2", envvar="AVS_TOOLS_SAM2", show_envvar=True, help=SAM2_HELP)]
SamType = Annotated[str | None, typer.Option("--sam-type", help="vit_b, vit_l or vit_h for a .pth whose name "
                                                                "does not say.")]
# where a stage's work runs (avsbench_tools.engine): collect, sample and preannotate
Sam3Ckpt = Annotated[str | None, typer.Option("--sam3", envvar="AVS_TOOLS_SAM3", show_envvar=True,
                                              help="SAM 3 video checkpoint for the sam3 backend: a transformers "
                                              "folder or a cached id (e.g. facebook/sam3).")]
Engine = Annotated[str, typer.Option("--engine", help="local (this machine) or ray (a Ray cluster: --ray-address).")]
RayAddress = Annotated[str | None, typer.Option("--ray-address", help="--engine ray: HOST:PORT of a running cluster "
                                                "(ray start --head). Default: RAY_ADDRESS, else a local Ray for "
                                                "the run.")]
RayShared = Annotated[bool, typer.Option("--ray-shared-workspace", help="--engine ray: every node sees WORKSPACE at "
                                         "the same path (NFS...); workers read inputs there, not sent bytes.")]


def json_flag(shape: str = "") -> type:
    """The `--json` flag, its help naming what is printed: `StatusJson = json_flag("{recipe, ...}")`."""
    return Annotated[bool, typer.Option("--json", help=f"Print {shape or 'JSON'} instead of the text report.")]


Json = json_flag("a JSON object")

# the TPAVI baseline's options: avs-tools baseline train/eval/predict and release-check
Vggish = Annotated[Path | None, typer.Option("--vggish-weights", help="torchvggish weights (vggish-10086976.pth); "
                                             "without them the frozen audio encoder is random (loud warning).")]
Visual = Annotated[Path | None, typer.Option("--visual-weights", help="ImageNet weights of the visual encoder "
                                             "(torchvision ResNet, official pvt_v2_b5.pth); without them it trains "
                                             "from scratch (loud warning).")]
Backbone = Annotated[str | None, typer.Option("--backbone", help="resnet50 (default), pvt_v2_b5, resnet18, or "
                                              "resnet18-w16 (small and smaller, for CPU sanity runs).")]


# -- running a stage ---------------------------------------------------------------------------------
@contextlib.contextmanager
def stage_run(workspace: Path, lock: str | None = None, quiet: bool = False) -> Iterator[tuple[Workspace, ProgressFn]]:
    """Open `workspace` (taking its writer lock when `lock` names the command: every command that writes
    the workspace does; readers pass none) with progress bars (none when `quiet`); closes both.

        with stage_run(workspace, lock="sample", quiet=quiet) as (ws, progress):
            res = sample(ws, opts, progress=progress)

    The bars are drawn from the first report on, so an error before any work prints only its line."""
    from avsbench_tools.cli.bars import bars
    from avsbench_tools.workspace import open_workspace

    ws = open_workspace(workspace, lock=lock)
    try:
        with bars(quiet) as progress:
            yield ws, progress
    finally:
        ws.close()


# -- what a command prints at its end ------------------------------------------------------------------
def say_next(command: str, quiet: bool = False) -> None:
    """End a stage with the command to run next (`next: avs-tools ...`), unless --quiet. Every path in it goes
    through `q` so the line can be pasted into a shell as it is."""
    if not quiet:
        typer.echo(f"next: {command}")


def release_format(release, fmt: str | None) -> str:
    """--format, else the format the release's own marker names (see formats.of_release); else a one-line error."""
    from avsbench_tools import formats
    from avsbench_tools.errors import UsageError

    if fmt:
        return fmt
    if not Path(release).is_dir():
        raise UsageError(f"{release}: no such folder" if not Path(release).exists() else f"{release}: not a folder")
    found = formats.of_release(release)
    if found is None:
        raise UsageError(f"{release}: no avs-tools marker names its format; pass --format ({', '.join(formats.names())})")
    return found


def q(path) -> str:
    """A path (or any word) quoted for a POSIX shell, as `next:` lines print them (shlex.quote)."""
    import shlex

    return shlex.quote(str(path))


def studio_installed() -> bool:
    """Whether the Label Studio server this build drives can be started (its program is found)."""
    from avsbench_tools.errors import AvsError
    from avsbench_tools.studio.server import find_binary

    try:
        find_binary()
    except AvsError:
        return False
    return True


def review_hint(workspace) -> str:
    """What to do after proposals exist: review them in the studio (when installed), or export them as they are."""
    w = q(workspace)
    export = f"avs-tools export {w} OUT --include-unreviewed  (proposals as masks)"
    if studio_installed():
        return f"avs-tools studio start {w} && avs-tools push {w}  (review the proposals), or: {export}"
    return f"{export}; to review them first, install Label Studio (make studio-install), then avs-tools push {w}"


def collect_hint(workspace, recipe_path=None, recipe_name: str | None = None) -> str:
    """The collect command for a new workspace: `--world WORLD` when the recipe is a synthetic world's
    (WORLD/recipe.toml beside WORLD/world.json), else the kinds of sources."""
    w = q(workspace)
    if recipe_path is not None:
        world = Path(recipe_path).expanduser().parent
        if (world / "world.json").is_file() and (world / "videos").is_dir():
            return f"avs-tools collect {w} --world {q(world)}"
    if recipe_name and recipe_name.startswith("synthetic-"):
        return f"avs-tools collect {w} --world WORLD  (the folder avs-tools synth wrote)"
    return f"avs-tools collect {w} --local DIR (or --urls FILE, --csv FILE, --keywords TEXT)"


def report_failures(failures: Sequence[tuple[str, str]], workspace, shown: int = 5) -> None:
    """Print `item: reason` for the first few failures, then where to see the rest (stderr)."""
    for item, reason in failures[:shown]:
        typer.echo(f"  failed: {item}: {reason}", err=True)
    if len(failures) > shown:
        typer.echo(f"  and {len(failures) - shown} more: avs-tools status {workspace} --failures", err=True)


def fail_when_none_done(failures: Sequence[tuple[str, str]], workspace, none_done: bool, what: str) -> None:
    """List the failures of a stage run (`report_failures`); when the run tried clips and none succeeded,
    end with `avs-tools: error: every clip <what> in this run failed (N)` and exit 1."""
    report_failures(failures, workspace)
    if none_done and failures:
        typer.echo(f"avs-tools: error: every clip {what} in this run failed ({len(failures)})", err=True)
        raise typer.Exit(1)


def print_json(value, as_json: bool) -> bool:
    """With --json, print `value` as indented JSON and return True (the command then ends)."""
    if as_json:
        import json

        typer.echo(json.dumps(value, indent=1))
    return as_json


def note(text: str) -> None:
    """One line on stderr for something the user should know but that does not stop the command."""
    typer.echo(f"avs-tools: note: {text}", err=True)


def explicit(ctx: typer.Context, name: str) -> bool:
    """True if the user gave option `name` on this command line. A value from an environment variable
    (a standing configuration, such as AVS_TOOLS_DINO) does not count: notes about options that cannot
    take effect speak only of what was typed."""
    src = ctx.get_parameter_source(name)
    return src is not None and src.name in ("COMMANDLINE", "PROMPT")


def warn(lines) -> None:
    """Print warnings on stderr, each starting with WARNING (the baseline's and release-check's loud ones)."""
    for w in lines:
        typer.echo(w if w.startswith("WARNING") else f"WARNING: {w}", err=True)


def stages_with_a_command() -> list[str]:
    """The catalog's stages that this build has a command for (status never shows a stage you cannot run)."""
    from avsbench_tools.catalog import STAGES
    from avsbench_tools.cli import app

    names = {(c.name or c.callback.__name__).replace("_", "-") for c in app.registered_commands if c.callback}
    return [s for s in STAGES if s in names]
