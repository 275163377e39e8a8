"""The two error kinds the CLI turns into one-line messages (never tracebacks)."""


class AvsError(Exception):
    """A failure the user can act on (bad media, missing tool). The CLI exits with code 1."""

    exit_code = 1


class UsageError(AvsError):
    """Bad input from the user: a broken recipe, a missing workspace, wrong options. Exit code 2."""

    exit_code = 2


class MissingExtra(AvsError):
    """An optional dependency group is not installed."""

    exit_code = 2

    def __init__(self, extra: str, module: str):
        super().__init__(f"{module} is not installed: install avs-tools[{extra}] (pip install 'avs-tools[{extra}]')")


def require(module: str, extra: str = "models"):
    """Import an optional heavy module, or raise MissingExtra naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtra(extra, module) from exc


class Interrupted(AvsError):
    """Ctrl-C (or SIGTERM) during a stage: finished items are recorded; exit code 130.

    Stages raise it from their loop after stopping their workers, so the CLI can print
    `interrupted: N done, M left; run the same command to resume`.
    """

    exit_code = 130

    def __init__(self, done: int, left: int, what: str = ""):
        self.done, self.left = done, left
        super().__init__(f"interrupted: {done} done, {left} left; run the same command to resume"
                         + (f" ({what})" if what else ""))


class WorkspaceBusy(UsageError):
    """Another avs-tools process holds the workspace lock."""
