"""The engine options a stage takes (`EngineOptions`) and their one-line checks."""

from __future__ import annotations

from dataclasses import dataclass

from avsbench_tools.errors import UsageError

ENGINES = ("local", "ray")


@dataclass
class EngineOptions:
    """`--engine local|ray` and the Ray settings (ignored by the local engine)."""

    name: str = "local"
    address: str | None = None  # --ray-address; None: RAY_ADDRESS, else a local Ray started for the run
    shared: bool = False  # --ray-shared-workspace: every node sees the workspace at the same path
    gpus_per_worker: float | None = None  # preannotate: GPUs per model actor (None: 1 on CUDA, else 0)

    @property
    def ray(self) -> bool:
        return self.name == "ray"


def check_engine(opts: EngineOptions | None) -> EngineOptions:
    """The options, checked (None: the local engine); a UsageError names the bad option."""
    opts = opts or EngineOptions()
    if opts.name not in ENGINES:
        raise UsageError(f"--engine {opts.name}: expected one of {', '.join(ENGINES)}")
    if opts.gpus_per_worker is not None and opts.gpus_per_worker < 0:
        raise UsageError(f"--gpus-per-worker {opts.gpus_per_worker:g}: must be 0 or more")
    return opts


def engine_options(name: str = "local", address: str | None = None, shared: bool = False,
                   gpus_per_worker: float | None = None) -> tuple[EngineOptions, list[str]]:
    """The CLI's engine options, checked, and notes on the ones that cannot take effect."""
    opts = check_engine(EngineOptions(name, address, shared, gpus_per_worker))
    notes = []
    if not opts.ray:
        given = [o for o, v in (("--ray-address", address), ("--ray-shared-workspace", shared),
                                ("--gpus-per-worker", gpus_per_worker is not None)) if v]
        if given:
            notes.append(f"{', '.join(given)} {'has' if len(given) == 1 else 'have'} no effect without --engine ray")
    return opts, notes
