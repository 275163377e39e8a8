"""The layout rules docs/architecture.md states, checked on the source: no import cycle among the package's
modules (module-level imports, and function-level ones too; a module's own parent packages and type-only
`if TYPE_CHECKING:` imports aside), no module importing another's private (_name) names, a stage importing another
only through its package's names, a name placing one thing (no two modules of one name but the layout's own
pairs), masks.py a leaf, one rule for the masks a clip shows (mask_store.shown_masks) used by export, preview and
qa, and the preannotate backends named only in their registry."""

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
    nodes = _walk_runtime(tree) if everywhere else tree.body
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


def _walk_runtime(tree: ast.AST):
    """Every node but the bodies of `if TYPE_CHECKING:` (type-only imports never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
            else:
                todo.append(child)


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


def test_no_import_cycles_through_function_level_imports():
    mods = _modules()
    graph = {n: _imports(n, p, mods, everywhere=True) for n, p in mods.items()}
    assert _cycles(graph) == []
    # a function-level import closes a loop; a type-only one does not
    tree = ast.parse("import os\nif TYPE_CHECKING:\n    import a\ndef f():\n    import b\n")
    names = {a.name for n in _walk_runtime(tree) if isinstance(n, ast.Import) for a in n.names}
    assert names == {"os", "b"}


def test_no_module_imports_private_names_of_another():
    mods = _modules()
    found = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("avsbench_tools"):
                found += [f"{name}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []


# The pipeline's stages: each uses another only through the names its package exports (`avsbench_tools.<stage>`),
# never a module inside it. The shared layers (catalog, audio, media, writers) are libraries whose modules anyone
# imports; `cli` (one file per command) and `engine` (the Ray halves of collect, sample and preannotate,
# built from those stages' own parts) are not stages.
STAGES = {"baselines", "collect", "export", "negative_audio", "preannotate", "preview", "publish", "release_check",
          "sample", "stats", "studio", "synth"}


def _deep_stage_imports(name: str, is_package: bool, text: str) -> list[str]:
    """The imports of a module inside another stage's package in one module's source."""
    parts = name.split(".")
    own = parts[1] if len(parts) > 2 or (is_package and len(parts) > 1) else None
    if own in ("cli", "engine"):
        return []
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and not node.level:
            modules = [node.module or ""]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        for module in modules:
            target = module.split(".")
            if target[0] == "avsbench_tools" and len(target) > 2 and target[1] in STAGES and target[1] != own:
                found.append(f"{name}: {module}")
    return found


def test_stages_use_each_other_only_through_their_packages_names():
    found = [f for n, p in _modules().items()
             for f in _deep_stage_imports(n, p.name == "__init__.py", p.read_text(encoding="utf-8"))]
    assert found == []
    # the checker finds one (a function-level import included), and lets a package use its own modules
    src = "def f():\n    from avsbench_tools.negative_audio" + ".sets import write_negative_sets\n"
    assert _deep_stage_imports("avsbench_tools.export.stage", False, src) == [
        "avsbench_tools.export.stage: avsbench_tools.negative_audio.sets"]
    assert _deep_stage_imports("avsbench_tools.negative_audio", True, src) == []
    assert _deep_stage_imports("avsbench_tools.completeness", False, src) != []
    assert _deep_stage_imports("avsbench_tools.export.stage", False, "from avsbench_tools.writers.avss import x\n") == []
    assert _deep_stage_imports("avsbench_tools.export.stage", False, "import avsbench_tools.stats.page\n") != []


def test_preannotate_backends_are_named_only_in_their_registry():
    """The stage, its options, its CLI and the Ray engine read a backend through its registry entry (backends.py):
    no backend name is written in them (the backends' own modules write theirs in their mask evidence)."""
    import re

    from avsbench_tools.preannotate.backends import REGISTRY

    assert set(REGISTRY) == {"grounded-sam", "sam3", "motion"}
    mods = _modules()
    for user in ("avsbench_tools.preannotate.stage", "avsbench_tools.preannotate.options",
                 "avsbench_tools.cli.preannotate", "avsbench_tools.engine.preannotate"):
        text = mods[user].read_text(encoding="utf-8")
        named = [b for b in REGISTRY if re.search(rf"[\"']{re.escape(b)}[\"']", text)]
        assert named == [], user


def test_masks_is_a_leaf_and_one_rule_says_what_a_clip_shows():
    mods = _modules()
    assert _imports("avsbench_tools.masks", mods["avsbench_tools.masks"], mods, everywhere=True) == set()
    for user in ("avsbench_tools.export.stage", "avsbench_tools.preview.sheet", "avsbench_tools.studio.qa"):
        text = mods[user].read_text(encoding="utf-8")
        assert "shown_masks(" in text and "latest_masks(" not in text, user
    for call in ("latest_masks(", "mask_png("):  # the masks' storage: one module
        users = [n for n, p in mods.items() if call in p.read_text(encoding="utf-8")]
        assert users == ["avsbench_tools.mask_store"], call


# Names two modules still share (issue #23 item 5: each must go, and this list with it): the base classes of the
# catalog and of the writers, baselines' training config and the studio's labelling config, baselines' training data
# and the Ray engine's data pipelines.
SHARED_NAMES_LEFT: set[str] = set()


def test_a_name_places_one_thing():
    """No two modules share a name, except: a command's file (cli/<command>.py) and what it runs, the Ray half of a
    stage (engine/<stage>.py) and that stage, the catalog's table access for a module (catalog/<name>.py, both
    docstrings saying so), and the role names of a stage package (stage.py: its loop, options.py: its record)."""
    import typer.main

    from avsbench_tools.cli import app

    commands = {n.replace("-", "_") for n in typer.main.get_group(app).commands}
    mods = _modules()
    by_name: dict[str, list[str]] = {}
    for name in mods:
        if name != "avsbench_tools":
            by_name.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    clashes = {}
    for leaf, names in by_name.items():
        if leaf in ("stage", "options") or len(names) < 2:
            continue
        rest = [n for n in names if not (n == f"avsbench_tools.cli.{leaf}" and leaf in commands)
                and not (n == f"avsbench_tools.engine.{leaf}" and leaf in ("collect", "sample", "preannotate"))]
        if f"avsbench_tools.catalog.{leaf}" in rest and f"avsbench_tools.{leaf}" in rest and all(
                "table access" in " ".join((ast.get_docstring(ast.parse(mods[n].read_text(encoding="utf-8"))) or "")
                                           .split()) for n in (f"avsbench_tools.catalog.{leaf}", f"avsbench_tools.{leaf}")):
            rest.remove(f"avsbench_tools.catalog.{leaf}")
        if len(rest) > 1:
            clashes[leaf] = sorted(rest)
    assert set(clashes) == SHARED_NAMES_LEFT, clashes
