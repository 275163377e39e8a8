"""Hash every file of an export of every format (issue #23: renames keep the exports byte for byte).

    .venv/bin/python tools/export_hashes.py OUT.json [--work DIR] [--code SOURCE_TREE]

For each format: a synthetic world (its gold release written by synth) -> init -> collect --world ->
sample -> preannotate (the default, weight-free backend) -> export --include-unreviewed, and its test split
alone (with negative-audio copies but for Ref-AVS). Writes {format: {relative path: sha256}} for the gold release and the
export, so two runs (before and after a change) can be compared with `diff`. Every file is hashed as written,
but the marker's written_at time (and the marker's line in SHA256SUMS, which lists it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

FORMATS = {"avsbench-s4": 5, "avsbench-ms3": 5, "avss": 5, "ref-avs": 10}
CLI = [sys.executable, "-m", "avsbench_tools"]


MARKER = ".avs-tools-output"  # holds the time it was written (written_at): hashed without it


def _bytes(p: Path) -> bytes:
    data = p.read_bytes()
    if p.name == MARKER:
        info = json.loads(data)
        info.pop("written_at", None)
        return json.dumps(info, sort_keys=True).encode()
    if p.name == "SHA256SUMS":  # lists the marker's sha256: hashed without that line
        return b"".join(line for line in data.splitlines(keepends=True) if not line.rstrip().endswith(MARKER.encode()))
    return data


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(_bytes(p)).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


CODE: list[str] = []  # --code: the source tree to run (another checkout of the package), else the installed one


def _run(*args: object) -> None:
    env = dict(os.environ, PYTHONPATH=CODE[0]) if CODE else None
    subprocess.run([*CLI, *map(str, args)], check=True, stdout=subprocess.DEVNULL, cwd=CODE[0] if CODE else None,
                   env=env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--work")
    ap.add_argument("--hash-only", action="store_true", help="only hash the exports already in --work")
    ap.add_argument("--code", help="run the package of this source tree (e.g. a `git archive` of the commit before)")
    a = ap.parse_args()
    if a.code:
        CODE.append(str(Path(a.code).resolve()))
    work = Path(a.work or tempfile.mkdtemp(prefix="export-hashes-"))
    res: dict[str, dict[str, str]] = {}
    for fmt, seconds in FORMATS.items():
        d = work / fmt
        if a.hash_only:
            res.update({f"{fmt}/{k}": _tree(d / ("world/gold" if k == "gold" else k)) for k in ("gold", "release", "test")})
            continue
        d.mkdir(parents=True, exist_ok=True)
        _run("synth", d / "world", "--clips", 4, "--seconds", seconds, "--size", "160x120", "--seed", 5,
             "--gold", fmt, "-q")
        _run("init", d / "ws", "--recipe", d / "world" / "recipe.toml")
        _run("collect", d / "ws", "--world", d / "world", "--any-license", "-q")
        _run("sample", d / "ws", "-q")
        _run("preannotate", d / "ws", "-q")
        _run("export", d / "ws", d / "release", "--format", fmt, "--include-unreviewed", "--force", "-q")
        negatives = [] if fmt == "ref-avs" else ["--negative-audio", "silence,noise,offscreen"]  # ref-avs: test_n
        _run("export", d / "ws", d / "test", "--format", fmt, "--include-unreviewed", "--split", "test", *negatives,
             "--force", "-q")
        res[f"{fmt}/gold"] = _tree(d / "world" / "gold")
        res[f"{fmt}/release"] = _tree(d / "release")
        res[f"{fmt}/test"] = _tree(d / "test")
        print(fmt, {k: len(v) for k, v in res.items() if k.startswith(fmt)}, flush=True)
    Path(a.out).write_text(json.dumps(res, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
