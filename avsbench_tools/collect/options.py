"""The collect stage's options (`CollectOptions`, what `avs-tools collect` sets) and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CollectOptions:
    keywords: list[str] = field(default_factory=list)
    per_keyword: int = 10
    category: str | None = None
    urls: Path | None = None
    csv: Path | None = None
    local: Path | None = None
    any_license: bool = False
    max_duration: float | None = None
    min_height: int | None = None
    max_height: int = 720
    jobs: int = 1
    sleep: float = 0.0
    retries: int = 2
    timeout: float = 20.0
    clips_per_video: int = 1
    fps: int | None = None
    seconds: int | None = None
    retry_failed: bool = False
    check_js_runtime: bool = True
    category_from_folder: bool = False  # --local: the first sub-folder name is each file's category
    world: Path | None = None  # a synthetic world: keep its video ids, splits and categories
    # refuse new --local/--urls/--keywords sources that would get no category (the CLI sets it;
    # library callers that set categories otherwise may leave it off)
    require_category: bool = False
    engine: object = None  # engine.EngineOptions; None: the local engine (--engine ray: avsbench_tools.engine)


@dataclass
class CollectResult:
    clips: int = 0  # clips in the workspace after the run
    new_clips: int = 0
    failed: int = 0  # transient failures recorded by this run (retry with --retry-failed)
    rejected: int = 0  # permanent rejections recorded by this run (never retried)
    skipped: int = 0  # sources already done before this run
    sources: int = 0  # items this run worked on (sources processed + files rejected on sight)
    failures: list[tuple[str, str, bool]] = field(default_factory=list)  # (source shown, reason, permanent)
    notes: list[str] = field(default_factory=list)
    open_failed: int = 0  # transient failures in the ledger after the run
    open_rejected: int = 0  # rejections in the ledger after the run
    idle: str | None = None  # why the run had nothing to do
    nodes: dict[str, int] = field(default_factory=dict)  # Ray engine: sources finished per node

    @property
    def all_failed(self) -> bool:
        """This run had work and every item of it failed or was rejected."""
        return self.sources > 0 and self.new_clips == 0 and self.failed + self.rejected >= self.sources
