"""export never replaces what it did not write, stops cleanly on Ctrl-C, writes files like any other
tool, and tells the user what it could not do (issue #12)."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avsbench_tools.catalog import Source
from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.export import MANIFEST, _public_source
from avsbench_tools.fsutil import MARKER, read_marker
from avsbench_tools.preannotate import PreannotateOptions, preannotate
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.synth import SynthParams, synthesize
from avsbench_tools.workspace import init_workspace, open_workspace
from tests.helpers import cli_here
from tests.helpers.interrupt import start_cli, wait_for


def _build(root: Path, clips: int, seconds: int, seed: int, *, stages=("collect", "sample", "preannotate")) -> Path:
    """synth world -> workspace (collect --local with a category, sample, motion pre-annotation)."""
    synthesize(root / "world", SynthParams(clips=clips, seconds=seconds, width=160, height=120, seed=seed))
    ws, _ = init_workspace(root / "ws", str(root / "world" / "recipe.toml"))
    try:
        if "collect" in stages:
            collect(ws, CollectOptions(local=root / "world" / "videos", any_license=True, category="guitar"))
        if "sample" in stages:
            sample(ws, SampleOptions(jobs=2))
        if "preannotate" in stages:
            preannotate(ws, PreannotateOptions())
    finally:
        ws.close()
    return root / "ws"


@pytest.fixture(scope="module")
def ms3(tmp_path_factory) -> Path:
    """An MS3 workspace of 6 pre-annotated clips; its world's videos are the collected (local) sources."""
    root = tmp_path_factory.mktemp("ms3")
    _build(root, 6, 5, 9)
    return root


@pytest.fixture(scope="module")
def refavs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("refavs")
    _build(root, 2, 10, 4)
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """Every file below root and its digest, but the workspace's lock and live database files."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock" and not p.name.startswith("catalog.sqlite"):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _one_line_refusal(r: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _export(ws: Path, out: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return cli_here("export", ws, out, "--include-unreviewed", "-q", *args, **kw)


def test_force_never_replaces_the_workspace_its_parent_sources_or_user_files(ms3, tmp_path):
    ws = ms3 / "ws"
    before = _snapshot(ms3)
    _one_line_refusal(_export(ws, ws, "--force"), f"OUT {ws}", "must not replace")
    _one_line_refusal(_export(ws, ms3, "--force"), f"OUT {ms3}", "must not replace")
    # the folder of the collected (local) videos, and its parent
    _one_line_refusal(_export(ws, ms3 / "world" / "videos", "--force"), "must not replace", ".mp4")
    _one_line_refusal(_export(ws, ms3 / "world", "--force"), "must not replace")
    _one_line_refusal(_export(ws, ws / "sources", "--force"), "must not replace")
    assert _snapshot(ms3) == before
    assert not [p for p in ms3.iterdir() if p.name.startswith(".tmp-")]
    # a user's folder with other files, with and without --force
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("mine")
    (user / "figs").mkdir()
    (user / "figs" / "a.png").write_bytes(b"png")
    for extra in ((), ("--force",)):
        _one_line_refusal(_export(ws, user, *extra), f"OUT {user}", MARKER)
        assert sorted(str(p.relative_to(user)) for p in user.rglob("*")) == ["figs", "figs/a.png", "thesis.tex"]
        assert (user / "thesis.tex").read_text() == "mine"


def test_force_replaces_its_own_earlier_release_only_when_all_of_it_is_its_own(ms3, tmp_path):
    ws, rel = ms3 / "ws", tmp_path / "rel"
    r = _export(ws, rel, "--split", "test", check=True)
    assert read_marker(rel)["kind"] == "release"
    first = list(csv.reader(open(rel / "Multi-sources" / "ms3_meta_data.csv")))[1:]
    assert {row[1] for row in first} == {"test"}
    # without --force: refused, names --force
    _one_line_refusal(_export(ws, rel), "--force")
    # a file someone added to the release: --force refuses and names it
    (rel / "notes.txt").write_text("my notes")
    _one_line_refusal(_export(ws, rel, "--force"), "notes.txt", MANIFEST)
    (rel / "notes.txt").unlink()
    # its own earlier release: replaced
    r = _export(ws, rel, "--force", check=True)
    rows = list(csv.reader(open(rel / "Multi-sources" / "ms3_meta_data.csv")))[1:]
    assert len(rows) == 6 and {row[1] for row in rows} == {"train", "val", "test"}, r.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    # the marker is part of the release: listed in SHA256SUMS, which checks
    listed = [ln.split("  ", 1)[1] for ln in (rel / MANIFEST).read_text().splitlines()]
    assert MARKER in listed
    assert len(listed) == sum(1 for p in rel.rglob("*") if p.is_file()) - 1
    chk = subprocess.run(["sha256sum", "-c", "--quiet", MANIFEST], cwd=rel, capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout


def test_release_from_before_the_marker_is_recognised_by_its_manifest(ms3, tmp_path):
    ws, rel = ms3 / "ws", tmp_path / "old"
    _export(ws, rel, "--split", "val", check=True)
    # what an older avs-tools wrote: no marker, a manifest of every file
    (rel / MARKER).unlink()
    lines = [ln for ln in (rel / MANIFEST).read_text().splitlines() if not ln.endswith(f"  {MARKER}")]
    (rel / MANIFEST).write_text("\n".join(lines) + "\n")
    _export(ws, rel, "--force", check=True)
    assert len(list(csv.reader(open(rel / "Multi-sources" / "ms3_meta_data.csv")))) == 7


@pytest.mark.parametrize("umask, fmode, dmode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_release_files_follow_the_umask(ms3, tmp_path, umask, fmode, dmode):
    rel = tmp_path / "rel"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, "-m", "avsbench_tools", "export", str(ms3 / "ws"), str(rel),
                        "--include-unreviewed", "-q"], capture_output=True, text=True, env=env,
                       preexec_fn=lambda: os.umask(umask), timeout=600)
    assert r.returncode == 0, r.stderr
    files = [p for p in rel.rglob("*") if p.is_file()]
    suffixes = {p.suffix for p in files}
    assert {".csv", ".wav", ".pkl", ".png", ".md", ""} <= suffixes, suffixes  # "" = SHA256SUMS, the marker
    wrong = {str(p.relative_to(rel)): oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o777 != fmode}
    assert not wrong, wrong
    dirs = [rel, *(p for p in rel.rglob("*") if p.is_dir())]
    wrong = {str(p): oct(p.stat().st_mode & 0o777) for p in dirs if p.stat().st_mode & 0o777 != dmode}
    assert not wrong, wrong


def test_ref_avs_jpgs_follow_the_umask(refavs, tmp_path):
    rel = tmp_path / "rel"
    r = subprocess.run([sys.executable, "-m", "avsbench_tools", "export", str(refavs / "ws"), str(rel),
                        "--include-unreviewed", "-q"], capture_output=True, text=True,
                       preexec_fn=lambda: os.umask(0o022), timeout=600)
    assert r.returncode == 0, r.stderr
    jpgs = list(rel.rglob("*.jpg"))
    assert jpgs and all(p.stat().st_mode & 0o777 == 0o644 for p in jpgs)


def test_card_names_local_sources_by_file_name_only(ms3, tmp_path):
    rel = tmp_path / "rel"
    _export(ms3 / "ws", rel, check=True)
    card = (rel / "DATASET_CARD.md").read_text()
    assert "file://" not in card and str(ms3) not in card and "/world/videos" not in card
    for v in (ms3 / "world" / "videos").glob("*.mp4"):
        assert f"| {v.name} |" in card
    # a web source keeps its URL; a local one shows its name even when only the file:// URL is known
    web = Source(source_id="yt-x", kind="url", url="https://www.youtube.com/watch?v=abcdefghijk", title="A dog")
    assert _public_source(web) == ("https://www.youtube.com/watch?v=abcdefghijk", "A dog")
    local = Source(source_id="local-x", kind="local", url="file:///home/ann/My%20videos/cat%20one.mp4",
                   title="sub/cat one.mp4")
    assert _public_source(local) == ("cat one.mp4", "cat one.mp4")


def test_next_line_and_seed_after_splits_are_fixed(ms3, tmp_path):
    ws = ms3 / "ws"
    r = cli_here("export", ws, tmp_path / "a", "--include-unreviewed", check=True)
    assert r.stdout.splitlines()[-1] == f"next: avs-tools validate {tmp_path / 'a'} --format avsbench-ms3"
    assert "ignored" not in r.stderr
    splits = list(csv.reader(open(tmp_path / "a" / "Multi-sources" / "ms3_meta_data.csv")))
    r = cli_here("export", ws, tmp_path / "b", "--include-unreviewed", "--seed", "5", "-q", check=True)
    assert "next:" not in r.stdout  # --quiet
    notes = [ln for ln in r.stderr.splitlines() if "--seed" in ln]
    assert len(notes) == 1 and "--seed 5 ignored" in notes[0] and "assigned earlier" in notes[0], r.stderr
    assert list(csv.reader(open(tmp_path / "b" / "Multi-sources" / "ms3_meta_data.csv"))) == splits
    # the same seed as the stored one: nothing to say
    r = cli_here("export", ws, tmp_path / "c", "--include-unreviewed", "--seed", "0", "-q", check=True)
    assert "--seed" not in r.stderr


def test_seed_on_a_workspace_without_splits_is_used(ms3, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(ms3 / "ws", ws)
    w = open_workspace(ws)
    with w.catalog.tx() as db:
        db.execute("UPDATE clips SET split=NULL")
        db.execute("DELETE FROM meta WHERE key='split_seed'")
    w.close()
    r = cli_here("export", ws, tmp_path / "rel", "--include-unreviewed", "--seed", "5", "-q", check=True)
    assert "--seed" not in r.stderr
    w = open_workspace(ws)
    assert w.catalog.meta()["split_seed"] == "5"
    w.close()


def test_nothing_to_export_says_what_to_run_first(tmp_path):
    root = tmp_path
    synthesize(root / "world", SynthParams(clips=1, seconds=5, width=96, height=64, seed=1))
    ws, _ = init_workspace(root / "ws", str(root / "world" / "recipe.toml"))
    ws.close()
    out = root / "rel"
    _one_line_refusal(cli_here("export", root / "ws", out), "no clips", f"avs-tools collect {root / 'ws'}")
    ws = open_workspace(root / "ws")
    collect(ws, CollectOptions(local=root / "world" / "videos", any_license=True, category="guitar"))
    ws.close()
    _one_line_refusal(cli_here("export", root / "ws", out), "sampled", f"avs-tools sample {root / 'ws'}")
    ws = open_workspace(root / "ws")
    sample(ws, SampleOptions(jobs=1))
    ws.close()
    for extra in ((), ("--include-unreviewed",)):
        _one_line_refusal(cli_here("export", root / "ws", out, *extra), "masks", f"avs-tools preannotate {root / 'ws'}")
    ws = open_workspace(root / "ws")
    preannotate(ws, PreannotateOptions())
    ws.close()
    _one_line_refusal(cli_here("export", root / "ws", out), "reviewed", "--include-unreviewed")
    assert not out.exists()
    # every refusal came before any work: no splits were drawn
    ws = open_workspace(root / "ws")
    assert all(c.split is None for c in ws.catalog.clips())
    ws.close()


def test_split_without_clips_says_what_to_do(refavs, tmp_path):
    r = cli_here("export", refavs / "ws", tmp_path / "rel", "--split", "test_u", "--include-unreviewed")
    _one_line_refusal(r, "--split test_u", "avs-tools collect", "avs-tools sample")
    _one_line_refusal(cli_here("export", refavs / "ws", tmp_path / "rel", "--split", "testing"), "--split testing")
    assert not (tmp_path / "rel").exists()


def test_ref_avs_template_expressions_and_missing_categories_are_loud(refavs, tmp_path):
    r = cli_here("export", refavs / "ws", tmp_path / "rel", "--include-unreviewed", "-q", check=True)
    rows = list(csv.DictReader(open(tmp_path / "rel" / "metadata.csv")))
    objects = {(row["vid"], row["fid"]) for row in rows if not row["uid"].startswith("null")}
    assert objects
    warn = [ln for ln in r.stderr.splitlines() if "template" in ln]
    assert len(warn) == 1 and warn[0].startswith("avs-tools: warning: ")
    assert f"{len(objects)} of {len(objects)} objects have no expression" in warn[0]
    card = (tmp_path / "rel" / "DATASET_CARD.md").read_text()
    head = card.split("## Counts")[0]
    assert "**Warning:" in head and "template expression 'the <category>'" in head
    assert "set-category" not in r.stderr  # every clip has its category
    # the same workspace with the categories lost (collect --local without --category used to do that)
    ws = tmp_path / "ws"
    shutil.copytree(refavs / "ws", ws)
    w = open_workspace(ws)
    with w.catalog.tx() as db:
        db.execute("UPDATE clips SET category=NULL")
        db.execute("UPDATE mask_versions SET category=NULL")
    n = len(w.catalog.clips())
    w.close()
    r = cli_here("export", ws, tmp_path / "rel2", "--include-unreviewed", "-q")
    assert r.returncode == 0, r.stderr
    cat = [ln for ln in r.stderr.splitlines() if "set-category" in ln]
    assert len(cat) == 1 and f"{n} clips with objects of no category" in cat[0] and f"set-category {ws}" in cat[0]
    card = (tmp_path / "rel2" / "DATASET_CARD.md").read_text()
    assert "objects of no category" in card.split("## Counts")[0]


def test_s4_unknown_category_is_reported(ms3, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(ms3 / "ws", ws)
    w = open_workspace(ws)
    with w.catalog.tx() as db:
        db.execute("UPDATE clips SET category=NULL")
        db.execute("UPDATE mask_versions SET category=NULL")
    w.close()
    r = cli_here("export", ws, tmp_path / "rel", "--format", "avsbench-s4", "--include-unreviewed", "-q")
    assert r.returncode == 0, r.stderr
    warn = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert len(warn) == 1 and "6 clips without a category" in warn[0] and "'unknown'" in warn[0]
    assert f"avs-tools set-category {ws}" in warn[0]
    rows = list(csv.DictReader(open(tmp_path / "rel" / "Single-source" / "s4_meta_data.csv")))
    assert {row["category"] for row in rows} == {"unknown"}
    assert "6 clips without a category" in (tmp_path / "rel" / "DATASET_CARD.md").read_text()


def test_export_takes_the_workspace_lock(ms3, tmp_path):
    w = open_workspace(ms3 / "ws", lock="test-holder")
    try:
        r = cli_here("export", ms3 / "ws", tmp_path / "rel", "--include-unreviewed", "-q")
    finally:
        w.close()
    _one_line_refusal(r, "busy", "test-holder")
    assert not (tmp_path / "rel").exists()


def test_export_path_problems_are_one_line(ms3, tmp_path):
    ws = ms3 / "ws"
    afile = tmp_path / "video.mp4"
    afile.write_bytes(b"not mine")
    cases = [(".", "'.'"), (afile, "not a folder"), (tmp_path / "missing" / "rel", "does not exist"),
             ("/proc/avs-tools-rel", "cannot write"), ("/proc/self", "")]
    for out, needle in cases:
        r = cli_here("export", ws, out, "--include-unreviewed", "--force", cwd=tmp_path)
        _one_line_refusal(r, needle)
    assert afile.read_bytes() == b"not mine"
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder only stops other users
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            _one_line_refusal(cli_here("export", ws, ro / "rel", "--include-unreviewed"), "cannot write")
        finally:
            ro.chmod(0o755)


def _group_alive(pgid: int) -> list:
    import psutil

    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return out


def test_ctrl_c_during_export_leaves_the_earlier_release_and_removes_the_temp(ms3, tmp_path):
    ws, rel = ms3 / "ws", tmp_path / "rel"
    _export(ws, rel, "--split", "train", check=True)
    before = _snapshot(rel)
    w = open_workspace(ws)
    status_before = [tuple(r) for r in w.catalog.query("SELECT * FROM stage_status WHERE stage='export' ORDER BY clip_id")]
    w.close()
    # held in its progress report after its first clip (start_cli, test-only): never finished before the Ctrl-C
    proc = start_cli("export", ws, rel, "--force", "--include-unreviewed", "-q", hold=tmp_path / "hold", hold_at=1)
    wait_for(lambda: (tmp_path / "hold.held").exists(), proc)
    tmp = tmp_path / f".tmp-{proc.pid}-rel"
    assert tmp.is_dir() and any(p.suffix == ".png" for p in tmp.rglob("*"))
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 130, (proc.returncode, err)
    assert took < 5, took
    assert "interrupted: 0 done, 6 left" in err and "Traceback" not in err, err
    assert not _group_alive(proc.pid)
    assert not tmp.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert _snapshot(rel) == before  # the earlier release, intact
    w = open_workspace(ws)
    after = [tuple(r) for r in w.catalog.query("SELECT * FROM stage_status WHERE stage='export' ORDER BY clip_id")]
    w.close()
    assert after == status_before  # stage_status only records completed exports
    # and the same command then completes
    _export(ws, rel, "--force", check=True)
    assert len(list(csv.reader(open(rel / "Multi-sources" / "ms3_meta_data.csv")))) == 7
