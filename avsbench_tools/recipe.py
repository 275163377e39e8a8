"""Dataset recipes: one declarative TOML file per dataset flavour (see pipelines/).

A recipe says how long clips are, which frame of each second is sampled, the category list with a
text prompt per category, split ratios, and which sampled frames are annotated per split. Users
copy a bundled recipe to define a new dataset; `load_recipe` rejects a broken one naming the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from avsbench_tools import formats
from avsbench_tools.errors import UsageError

SAMPLING_RULES = ("end-of-second", "first-of-second")
FRAME_FORMATS = ("png", "jpg")
ANNOTATE_RULES = ("first", "all")

_TOP_KEYS = {
    "name": str, "description": str, "format": str, "clip_seconds": list, "fps": int,
    "sampling": str, "frame_format": str, "multi_source": bool, "splits": dict,
    "annotate": dict, "categories": dict, "silent_categories": list, "unseen_categories": list,
    "export_size": list,
}
_REQUIRED = ("name", "format", "clip_seconds", "sampling", "categories", "splits", "annotate")


@dataclass(frozen=True)
class Recipe:
    name: str
    format: str
    clip_seconds: tuple[int, ...]
    sampling: str
    categories: dict[str, str]
    splits: dict[str, float]
    annotate: dict[str, str]
    description: str = ""
    fps: int = 25
    frame_format: str = "png"
    multi_source: bool = False
    silent_categories: tuple[str, ...] = ()
    unseen_categories: tuple[str, ...] = ()
    export_size: tuple[int, int] | None = None
    source: str = ""
    text: str = field(default="", repr=False)

    @property
    def default_seconds(self) -> int:
        return self.clip_seconds[0]

    @property
    def release_format(self) -> formats.ReleaseFormat:
        """The registry record of this recipe's release format."""
        return formats.get(self.format)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def prompt_for(self, category: str) -> str:
        return self.categories.get(category, category.replace("_", " ").replace("-", " "))

    def annotated_seconds(self, split: str, seconds: int) -> list[int]:
        rule = self.annotate.get(split, "all")
        return [0] if rule == "first" else list(range(seconds))

    def match_category(self, text: str | None) -> str | None:
        """Map a keyword or label onto a recipe category (exact name, prompt, or spacing variants)."""
        if not text:
            return None
        norm = text.strip().lower().replace("-", " ").replace("_", " ")
        for name, prompt in self.categories.items():
            if norm in (name.lower().replace("_", " ").replace("-", " "), prompt.lower()):
                return name
        return None


def bundled_recipe_dir() -> Path:
    """The repository's pipelines/ folder (the package is installed editable from the repo)."""
    return Path(__file__).resolve().parent.parent / "pipelines"


def bundled_recipes() -> list[str]:
    d = bundled_recipe_dir()
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise UsageError(f"recipe file {p} not found")
        return p
    candidate = bundled_recipe_dir() / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    known = ", ".join(bundled_recipes()) or "none"
    raise UsageError(f"unknown recipe {name_or_path!r}: give a .toml path or one of: {known}")


def load_recipe(name_or_path: str | Path) -> Recipe:
    path = resolve_recipe_path(name_or_path)
    return parse_recipe(path.read_text(encoding="utf-8"), source=str(path))


def parse_recipe(text: str, source: str = "<recipe>") -> Recipe:
    def bad(key: str, why: str) -> UsageError:
        return UsageError(f"recipe {source}: key '{key}' {why}")

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"recipe {source}: not valid TOML ({exc})") from None
    for key, value in data.items():
        if key not in _TOP_KEYS:
            raise bad(key, f"is not a recipe key (known: {', '.join(sorted(_TOP_KEYS))})")
        want = _TOP_KEYS[key]
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise bad(key, f"must be a {want.__name__}, got {type(value).__name__}")
    for key in _REQUIRED:
        if key not in data:
            raise bad(key, "is missing")
    if formats.find(data["format"]) is None:
        raise bad("format", f"must be one of {', '.join(formats.names())}")
    secs = data["clip_seconds"]
    if not secs or any(s not in (5, 10) for s in secs):
        raise bad("clip_seconds", "must list clip lengths of 5 and/or 10 seconds")
    if data["sampling"] not in SAMPLING_RULES:
        raise bad("sampling", f"must be one of {', '.join(SAMPLING_RULES)}")
    if data.get("frame_format", "png") not in FRAME_FORMATS:
        raise bad("frame_format", f"must be one of {', '.join(FRAME_FORMATS)}")
    fps = data.get("fps", 25)
    if not 1 <= fps <= 120:
        raise bad("fps", "must be between 1 and 120")
    cats = data["categories"]
    if not cats:
        raise bad("categories", "must name at least one category")
    for name, prompt in cats.items():
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad(f"categories.{name}", "must be a non-empty text prompt")
        if "/" in name or name.strip() != name or not name:
            raise bad(f"categories.{name}", "is not a usable category name (no slashes or outer spaces)")
    splits = data["splits"]
    for s, r in splits.items():
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not 0 <= r <= 1:
            raise bad(f"splits.{s}", "must be a ratio between 0 and 1")
    if "train" not in splits or abs(sum(splits.values()) - 1.0) > 1e-6:
        raise bad("splits", "must include train and its ratios must sum to 1")
    for s, rule in data["annotate"].items():
        if rule not in ANNOTATE_RULES:
            raise bad(f"annotate.{s}", f"must be one of {', '.join(ANNOTATE_RULES)}")
    for key in ("silent_categories", "unseen_categories"):
        for c in data.get(key, []):
            if c not in cats:
                raise bad(key, f"names {c!r}, which is not in categories")
    size = data.get("export_size")
    if size is not None and (len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size)):
        raise bad("export_size", "must be [width, height] in pixels")
    return Recipe(
        name=data["name"], format=data["format"], clip_seconds=tuple(secs), sampling=data["sampling"],
        categories=dict(cats), splits={k: float(v) for k, v in splits.items()}, annotate=dict(data["annotate"]),
        description=data.get("description", ""), fps=fps, frame_format=data.get("frame_format", "png"),
        multi_source=data.get("multi_source", False),
        silent_categories=tuple(data.get("silent_categories", [])),
        unseen_categories=tuple(data.get("unseen_categories", [])),
        export_size=tuple(size) if size else None, source=source, text=text,
    )
