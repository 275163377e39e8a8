"""set-category: change the category of clips already collected, and everything derived from it.

The rows change through the catalog's table access for this module, `catalog/categories.py`
(`Catalog.recategorise_many`); this module reads the pairs, checks them and reports.

A clip's category is set at collect time (--category, --category-from-folder, a CSV label, a
world). When it was wrong or missing, `set_categories` puts it right in one transaction
(`Catalog.recategorise_many`):

- clips.category;
- every mask version of the clip whose category came from the clip (the old category, or none);
- Ref-AVS objects of the clip with the old (or no) category, and their template expressions
  ("the <old category>") -- expressions a person wrote are never rewritten, only counted;
- the source's category hint, when every clip of that source now has the new category (so later
  clips cut from it follow).
Mask versions that carry another category (a multi-source clip's other objects) are left alone.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from avsbench_tools.errors import UsageError
from avsbench_tools.workspace import Workspace


@dataclass
class CategoryChange:
    clip_id: str
    old: str | None
    new: str
    mask_versions: int = 0
    objects: int = 0
    expressions: int = 0  # template expressions rewritten
    kept_expressions: int = 0  # written expressions that still name the old category (not rewritten)
    prompted: int = 0  # mask versions proposed by a prompted detector with the old category's prompt
    exported: bool = False  # the clip is in an earlier release: re-export

    @property
    def changed(self) -> bool:
        return self.old != self.new


def read_pairs_csv(path: Path) -> list[tuple[str, str]]:
    """`clip_id,category` rows (a header row is allowed). Errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--csv {path}: file not found")
    out = []
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save the CSV as "
                         "UTF-8") from None
    except OSError as exc:
        raise UsageError(f"--csv {path}: cannot be read ({exc.strerror})") from None
    with io.StringIO(text, newline="") as fh:
        for lineno, rec in enumerate(csv.reader(fh), start=1):
            rec = [c.strip() for c in rec]
            if not rec or not rec[0] or rec[0].startswith("#"):
                continue
            if lineno == 1 and rec[0].lower() in ("id", "clip", "clip_id", "name") and len(rec) >= 2:
                continue
            if len(rec) < 2 or not rec[1]:
                raise UsageError(f"{path}:{lineno}: expected clip_id,category")
            out.append((rec[0], rec[1]))
    if not out:
        raise UsageError(f"--csv {path}: no clip_id,category rows")
    return out


def set_categories(ws: Workspace, pairs: list[tuple[str, str]]) -> list[CategoryChange]:
    """Validate every (clip id, category) pair first (nothing changes on a bad one), then apply them
    all in one transaction. Returns one CategoryChange per clip, in the given order."""
    recipe = ws.recipe
    want: dict[str, str] = {}
    for cid, category in pairs:
        if category not in recipe.categories:
            hint = recipe.match_category(category)
            raise UsageError(f"--category {category!r} (clip {cid}) is not in recipe {recipe.name}"
                             + (f"; did you mean {hint}?" if hint else "")
                             + f" (one of: {', '.join(recipe.categories)})")
        cid = ws.resolve_clip(cid)
        if cid in want and want[cid] != category:
            raise UsageError(f"clip {cid} is given two categories ({want[cid]} and {category})")
        want[cid] = category
    changes = []
    for cid, res in zip(want, ws.catalog.recategorise_many(want), strict=True):
        changes.append(CategoryChange(cid, res["old"], res["new"], mask_versions=res["mask_versions"],
                                      objects=res["objects"], expressions=res["expressions"],
                                      kept_expressions=res["kept_expressions"], prompted=res["prompted"],
                                      exported=res["exported"]))
    return changes
