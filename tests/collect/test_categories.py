"""Categories are never lost (issue #12): collect refuses to make uncategorised clips, takes them from
sub-folders, says when --category cannot apply, and set-category fixes clips already collected."""

from __future__ import annotations

import fcntl
import os
import sqlite3

from avsbench_tools.recipe import load_recipe
from tests.helpers import cli_here
from tests.helpers.media_factory import make_video


def _db(ws, sql, args=()):
    con = sqlite3.connect(ws / "catalog.sqlite", timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _init(tmp_path, recipe="avsbench-s4"):
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", recipe, check=True)
    return ws


def test_local_without_category_refuses_and_lists_them(tmp_path):
    """Issue row: `collect --local DIR` without --category gave clips no category (S4/MS3 exported
    `unknown`, AVSS all background, Ref-AVS "the object")."""
    d = tmp_path / "footage"
    make_video(d / "a.mp4", seconds=5)
    ws = _init(tmp_path)
    proc = cli_here("collect", ws, "--local", d, "-q")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    cats = list(load_recipe("avsbench-s4").categories)
    assert "--category C (one of: " + ", ".join(cats) + ")" in proc.stderr
    assert "--category-from-folder" in proc.stderr
    assert _db(ws, "SELECT COUNT(*) FROM sources") == [(0,)], "a refusal adds nothing"
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/a.mp4\n")
    proc = cli_here("collect", ws, "--urls", urls, "-q")
    assert proc.returncode == 2 and "--urls" in proc.stderr and "dog_barking" in proc.stderr
    proc = cli_here("collect", ws, "--local", d, "--category", "dog_barking", "-q")
    assert proc.returncode == 0, proc.stderr
    assert _db(ws, "SELECT category FROM clips") == [("dog_barking",)]


def test_category_from_folder(tmp_path):
    d = tmp_path / "footage"
    make_video(d / "dog_barking" / "a.mp4", seconds=5)
    make_video(d / "cat_meowing" / "deeper" / "b.mp4", seconds=5)
    ws = _init(tmp_path)
    proc = cli_here("collect", ws, "--local", d, "--category-from-folder", "-q")
    assert proc.returncode == 0, proc.stderr
    got = dict(_db(ws, "SELECT s.title, c.category FROM clips c JOIN sources s USING(source_id)"))
    assert got == {"dog_barking/a.mp4": "dog_barking", "cat_meowing/deeper/b.mp4": "cat_meowing"}
    # a folder that is not a category of the recipe, or a video outside any folder: refused, nothing added
    make_video(d / "unicorns" / "c.mp4", seconds=5)
    proc = cli_here("collect", ws, "--local", d, "--category-from-folder", "-q")
    assert proc.returncode == 2 and "unicorns" in proc.stderr and "one of: baby_laughter" in proc.stderr
    (d / "unicorns" / "c.mp4").rename(d / "c.mp4")
    proc = cli_here("collect", ws, "--local", d, "--category-from-folder", "-q")
    assert proc.returncode == 2 and "not in a category folder" in proc.stderr and "c.mp4" in proc.stderr
    assert _db(ws, "SELECT COUNT(*) FROM sources") == [(2,)]
    proc = cli_here("collect", ws, "--local", d, "--category-from-folder", "--category", "dog_barking", "-q")
    assert proc.returncode == 2 and "exclude each other" in proc.stderr


def test_category_on_a_rerun_says_it_did_not_apply(tmp_path):
    """Issue row: a later --category was silently ignored for clips already collected."""
    d = tmp_path / "footage"
    make_video(d / "a.mp4", seconds=5)
    ws = _init(tmp_path)
    cli_here("collect", ws, "--local", d, "--category", "dog_barking", "-q", check=True)
    make_video(d / "b.mp4", seconds=5)
    proc = cli_here("collect", ws, "--local", d, "--category", "cat_meowing", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "--category cat_meowing did not apply to 1 source(s) already collected" in proc.stderr
    assert f"avs-tools set-category {ws} --clip ID --category C" in proc.stderr
    got = dict(_db(ws, "SELECT s.title, c.category FROM clips c JOIN sources s USING(source_id)"))
    assert got == {"a.mp4": "dog_barking", "b.mp4": "cat_meowing"}


def test_set_category_updates_clip_masks_objects_and_template_expressions(tmp_path):
    d = tmp_path / "footage"
    make_video(d / "a.mp4", seconds=5)
    make_video(d / "b.mp4", seconds=5)
    ws = _init(tmp_path)
    cli_here("collect", ws, "--local", d, "--category", "dog_barking", "-q", check=True)
    cli_here("sample", ws, "-q", check=True)
    cli_here("preannotate", ws, "-q", check=True)
    ids = [r[0] for r in _db(ws, "SELECT clip_id FROM clips ORDER BY clip_id")]
    a, b = ids
    n_masks = _db(ws, "SELECT COUNT(*) FROM mask_versions WHERE clip_id=? AND category='dog_barking'", (a,))[0][0]
    assert n_masks > 0
    con = sqlite3.connect(ws / "catalog.sqlite")
    with con:  # objects and expressions as the studio keeps them: one template, one written by a person
        con.execute("INSERT INTO objects(clip_id, fid, category, label) VALUES(?, 1, 'dog_barking', 'the dog barking')",
                    (a,))
        con.execute("INSERT INTO objects(clip_id, fid, category, label) VALUES(?, 2, 'male_speech', 'the man')", (a,))
        con.execute("INSERT INTO expressions(clip_id, n, fid, text) VALUES(?, 0, 1, 'the dog barking')", (a,))
        con.execute("INSERT INTO expressions(clip_id, n, fid, text) VALUES(?, 1, 1, 'the dog barking on the left')",
                    (a,))
        con.execute("INSERT INTO expressions(clip_id, n, fid, text) VALUES(?, 2, 2, 'the man')", (a,))
    con.close()
    proc = cli_here("set-category", ws, "--clip", a, "--category", "cat_meowing")
    assert proc.returncode == 0, proc.stderr
    assert f"{a}: dog_barking -> cat_meowing ({n_masks} mask versions, 1 objects, 1 template expressions)" in proc.stdout
    assert "1 written expression(s)" in proc.stderr and "still name dog_barking" in proc.stderr
    assert _db(ws, "SELECT category FROM clips WHERE clip_id=?", (a,)) == [("cat_meowing",)]
    assert _db(ws, "SELECT DISTINCT category FROM mask_versions WHERE clip_id=?", (a,)) == [("cat_meowing",)]
    assert _db(ws, "SELECT fid, category, label FROM objects WHERE clip_id=? ORDER BY fid", (a,)) == [
        (1, "cat_meowing", "the cat meowing"), (2, "male_speech", "the man")]
    assert _db(ws, "SELECT text FROM expressions WHERE clip_id=? ORDER BY n", (a,)) == [
        ("the cat meowing",), ("the dog barking on the left",), ("the man",)]
    assert _db(ws, "SELECT DISTINCT category FROM mask_versions WHERE clip_id=?", (b,)) == [("dog_barking",)]
    # the export follows: S4 puts the clip under its new category folder
    out = tmp_path / "rel"
    cli_here("export", ws, out, "--include-unreviewed", "-q", check=True)
    metas = (out / "Single-source" / "s4_meta_data.csv").read_text()
    assert ",cat_meowing," in metas and "dog_barking" in metas
    assert list((out / "Single-source" / "s4_data" / "gt_masks").glob("*/cat_meowing/*"))
    # a CSV of id,category; the same category again says so; exported clips name the re-export
    rows = tmp_path / "fix.csv"
    rows.write_text(f"clip_id,category\n{a},cat_meowing\n{b},lions_roaring\n")
    proc = cli_here("set-category", ws, "--csv", rows)
    assert proc.returncode == 0, proc.stderr
    assert f"{a}: already cat_meowing" in proc.stdout and f"{b}: dog_barking -> lions_roaring" in proc.stdout
    assert "set-category: 1 clip(s) changed, 1 already had their category" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith(f"next: avs-tools export {ws} OUT --force")


def test_set_category_refusals(tmp_path):
    d = tmp_path / "footage"
    make_video(d / "a.mp4", seconds=5)
    ws = _init(tmp_path)
    cli_here("collect", ws, "--local", d, "--category", "dog_barking", "-q", check=True)
    cid = _db(ws, "SELECT clip_id FROM clips")[0][0]
    proc = cli_here("set-category", ws, "--clip", cid, "--category", "unicorn")
    assert proc.returncode == 2 and "'unicorn'" in proc.stderr and "one of: baby_laughter" in proc.stderr
    proc = cli_here("set-category", ws, "--clip", cid[:-2], "--category", "cat_meowing")
    assert proc.returncode == 2 and "did you mean" in proc.stderr and cid in proc.stderr
    proc = cli_here("set-category", ws, "--clip", cid, "--clip", cid, "--category", "a", "--category", "b",
                   "--category", "c")
    assert proc.returncode == 2 and "one --category per --clip" in proc.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{cid}\n")
    proc = cli_here("set-category", ws, "--csv", bad)
    assert proc.returncode == 2 and "bad.csv:1" in proc.stderr
    assert _db(ws, "SELECT category FROM clips") == [("dog_barking",)], "a refusal changes nothing"
    # it writes the workspace: it takes the lock like every stage
    fd = os.open(ws / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = cli_here("set-category", ws, "--clip", cid, "--category", "cat_meowing")
    finally:
        os.close(fd)
    assert proc.returncode == 2 and "busy" in proc.stderr
    assert _db(ws, "SELECT category FROM clips") == [("dog_barking",)]
