"""The layout rules docs/architecture.md states, checked on the source: no import cycle among the package's
modules (module-level imports; a module's own parent packages aside), masks.py a leaf, and one rule for the
masks a clip shows (mask_store.shown_masks) used by export, preview and qa."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "avsbench_tools"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.with_suffix("").relative_to(PKG.parent).parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(name: str, path: Path, mods: dict[str, Path], everywhere: bool = False) -> set[str]:
    """The package's modules `name` imports: at module level (or `everywhere`, functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if everywhere else tree.body
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in mods}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                m = ".".join(base + ([node.module] if node.module else []))
            else:
                m = node.module or ""
            subs = {f"{m}.{a.name}" for a in node.names} & set(mods)
            out |= subs if len(subs) == len(node.names) else subs | ({m} & set(mods))
    parents = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")))}
    return out - parents - {name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycles():
    mods = _modules()
    graph = {n: _imports(n, p, mods) for n, p in mods.items()}
    assert _cycles(graph) == []
    # the checker finds one when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_masks_is_a_leaf_and_one_rule_says_what_a_clip_shows():
    mods = _modules()
    assert _imports("avsbench_tools.masks", mods["avsbench_tools.masks"], mods, everywhere=True) == set()
    for user in ("avsbench_tools.export.stage", "avsbench_tools.preview.sheet", "avsbench_tools.studio.qa"):
        text = mods[user].read_text(encoding="utf-8")
        assert "shown_masks(" in text and "latest_masks(" not in text, user
    for call in ("latest_masks(", "mask_png("):  # the masks' storage: one module
        users = [n for n, p in mods.items() if call in p.read_text(encoding="utf-8")]
        assert users == ["avsbench_tools.mask_store"], call
