"""preview: the contact sheet PNG (what it marks, its text chunk) and its output paths."""

from __future__ import annotations

import os
import stat
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.mask_store import shown_masks
from avsbench_tools.preannotate import PreannotateOptions, preannotate
from avsbench_tools.preview import (
    PALETTE,
    SOFTWARE,
    is_our_png,
    object_colours,
    plan_objects,
    png_text,
    preview_clip,
    silent_seconds,
    sound_threshold,
    wave_axis,
)
from avsbench_tools.sample import Activity, SampleOptions, activity_of, sample
from avsbench_tools.workspace import init_workspace, open_workspace
from tests.helpers import cli_here, run_cli


def _umask022():
    os.umask(0o022)


def _workspace(root: Path, world: Path, annotate: int) -> list[str]:
    """init + collect --local + sample every clip + preannotate the first `annotate` clips."""
    ws, _ = init_workspace(root, str(world / "recipe.toml"))
    try:
        collect(ws, CollectOptions(local=world / "videos", any_license=True, category="guitar"))
        sample(ws, SampleOptions(jobs=2))
        ids = sorted(c.clip_id for c in ws.catalog.clips())
        preannotate(ws, PreannotateOptions(clips=ids[:annotate]))
    finally:
        ws.close()
    return ids


@pytest.fixture(scope="module")
def ws5(tmp_path_factory, world_ms3) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("pv5") / "ws"
    return root, _workspace(root, world_ms3, annotate=2)


@pytest.fixture(scope="module")
def ws10(tmp_path_factory, world_10s) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("pv10") / "ws"
    return root, _workspace(root, world_10s, annotate=1)


def _one_line_error(r, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


# -- the picture ------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["ws5", "ws10"])
def test_preview_default_path_size_text_chunk_and_mode(request, which):
    root, ids = request.getfixturevalue(which)
    seconds = 5 if which == "ws5" else 10
    r = run_cli("preview", root, "--clip", ids[0], preexec_fn=_umask022)
    assert r.returncode == 0, r.stderr
    out = root / "previews" / f"{ids[0]}.png"
    assert r.stdout.strip() == f"preview: {out}"
    img = Image.open(out)
    assert img.format == "PNG"
    w, h = img.size
    # one frame column per second (2.6 in at 5 s, 1.9 in at 10 s, 100 dpi) above the audio panels
    assert (1300 <= w <= 1600) if seconds == 5 else (1900 <= w <= 2200), img.size
    assert 550 <= h <= 900, img.size
    assert len(np.unique(np.asarray(img.convert("L")))) > 50  # frames and plots, not a blank page
    assert png_text(out)["Software"] == SOFTWARE and is_our_png(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o755
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]


def test_masks_are_drawn_and_a_clip_without_masks_says_so(ws5):
    root, ids = ws5
    ws = open_workspace(root)
    try:
        n_rows = len(shown_masks(ws, ids[0], True))
        assert n_rows > 0
        res = preview_clip(ws, ids[0], root / "m.png", masks=True)
        assert res.objects == n_rows  # every stored mask of the clip is outlined
        plain = preview_clip(ws, ids[0], root / "p.png")
        assert plain.objects == 0
    finally:
        ws.close()
    # the pictures differ where the masks are drawn
    a = np.asarray(Image.open(root / "m.png").convert("RGB"), np.int16)
    b = np.asarray(Image.open(root / "p.png").convert("RGB"), np.int16)
    assert a.shape[1] == b.shape[1] and a.shape[0] > b.shape[0]  # the legend lines under the frames
    r = cli_here("preview", root, "--clip", ids[-1], "--masks", "--out", root / "none.png")
    assert r.returncode == 0 and "no masks for this clip yet" in r.stdout and "preannotate" in r.stdout


def test_preview_reads_while_a_stage_holds_the_lock(ws5):
    root, ids = ws5
    busy = open_workspace(root, lock="sample")
    try:
        r = cli_here("preview", root, "--clip", ids[1], "--out", root / "while-locked.png")
    finally:
        busy.close()
    assert r.returncode == 0, r.stderr
    assert (root / "while-locked.png").is_file()


# -- output paths -----------------------------------------------------------------------------------
def _plain_png(path: Path, text: dict[str, str] | None = None) -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path, pnginfo=info)
    return path.read_bytes()


def test_a_users_png_is_never_overwritten_and_our_own_is(ws5, tmp_path):
    root, ids = ws5
    cases = {"user.png": None, "gimp.png": {"Software": "GIMP 2.10"}}
    for name, text in cases.items():
        before = _plain_png(tmp_path / name, text)
        r = cli_here("preview", root, "--clip", ids[0], "--out", tmp_path / name)
        _one_line_error(r, name, "not written by avs-tools")
        assert (tmp_path / name).read_bytes() == before
    notes = tmp_path / "notes.png"
    notes.write_text("my notes, not an image\n")
    _one_line_error(cli_here("preview", root, "--clip", ids[0], "--out", notes), "notes.png")
    assert notes.read_text() == "my notes, not an image\n"
    # an earlier preview is ours: replaced
    ours = tmp_path / "ours.png"
    cli_here("preview", root, "--clip", ids[0], "--out", ours, check=True)
    first = ours.read_bytes()
    cli_here("preview", root, "--clip", ids[1], "--out", ours, check=True)
    assert ours.read_bytes() != first and png_text(ours)["Source"] == ids[1]


def test_a_users_file_in_previews_is_not_overwritten(ws5):
    root, ids = ws5
    target = root / "previews" / f"{ids[2]}.png"
    target.parent.mkdir(exist_ok=True)
    before = _plain_png(target)
    _one_line_error(cli_here("preview", root, "--clip", ids[2]), target.name, "not written by avs-tools")
    assert target.read_bytes() == before
    target.unlink()


@pytest.mark.parametrize("out,needle", [
    (".", "name a file"),
    ("FOLDER", "is a folder"),
    ("missing/x.png", "does not exist"),
    ("/proc/x.png", "cannot write"),
    ("x.jpg", "name a .png file"),
])
def test_path_errors_are_one_line(ws5, tmp_path, out, needle):
    root, ids = ws5
    if out == "FOLDER":
        out = str(tmp_path)
    r = cli_here("preview", root, "--clip", ids[0], "--out", out, cwd=tmp_path)
    _one_line_error(r, needle)
    assert not (tmp_path / "x.jpg").exists()


def test_unknown_clip_and_nothing_sampled(ws5, tmp_path, world_ms3):
    root, ids = ws5
    r = cli_here("preview", root, "--clip", ids[0][:-3])
    _one_line_error(r, "no such clip", ids[0])  # the nearest ids are suggested
    fresh, _ = init_workspace(tmp_path / "fresh", str(world_ms3 / "recipe.toml"))
    fresh.close()
    _one_line_error(cli_here("preview", tmp_path / "fresh"), f"run avs-tools sample {tmp_path / 'fresh'} first")
    fresh = open_workspace(tmp_path / "fresh")
    collect(fresh, CollectOptions(local=world_ms3 / "videos", any_license=True, category="guitar"))
    clip = sorted(c.clip_id for c in fresh.catalog.clips())[0]
    fresh.close()
    r = cli_here("preview", tmp_path / "fresh", "--clip", clip)
    _one_line_error(r, clip, "not sampled", f"avs-tools sample {tmp_path / 'fresh'}")
    assert not (tmp_path / "fresh" / "previews").exists()


# -- what the picture marks -------------------------------------------------------------------------
def test_one_colour_per_object_id_across_seconds(ws5):
    root, ids = ws5
    ws = open_workspace(root)
    try:
        rows = shown_masks(ws, ids[0], True) + shown_masks(ws, ids[1], True)
    finally:
        ws.close()
    # an object believed silent in one second keeps its colour (it is drawn dashed instead)
    rows += [replace(rows[0], second=9, sounding=False), replace(rows[0], second=8, sounding=None)]
    plan = plan_objects(rows)
    seen: dict[int, set[str]] = {}
    for objs in plan.by_second.values():
        for o in objs:
            seen.setdefault(o.fid, set()).add(o.colour)
    assert seen and all(len(c) == 1 for c in seen.values())
    assert len({next(iter(c)) for c in seen.values()}) == len(seen)  # distinct ids, distinct colours
    silent_one = [o for o in plan.by_second[9] if o.fid == rows[0].fid][0]
    assert silent_one.sounding is False and silent_one.label.endswith("(silent)")
    assert silent_one.label.startswith(f"#{rows[0].fid} {rows[0].category} ")


def test_object_colours_are_distinct_and_do_not_depend_on_the_second():
    cols = object_colours([5, 0, 3, 5, 0, 17])
    assert cols == {0: PALETTE[0], 3: PALETTE[1], 5: PALETTE[2], 17: PALETTE[3]}
    many = object_colours(range(len(PALETTE)))
    assert len(set(many.values())) == len(PALETTE)
    assert "#7f7f7f" not in PALETTE and "#c7c7c7" not in PALETTE  # grey is kept for silence


def test_silent_seconds_are_the_inactive_ones():
    act = Activity(level_db=[-20, -70, -21], floor_db=-72, relative_db=[52, 2, 51], active=[True, False, True])
    assert silent_seconds(act, 3) == [False, True, False]
    assert silent_seconds(act, 5) == [False, True, False, True, True]  # no activity past the audio: silent
    assert silent_seconds(None, 4) == [False] * 4  # unknown is not silent


def test_silent_seconds_of_a_real_clip_are_marked(ws5):
    root, ids = ws5
    ws = open_workspace(root)
    try:
        marked = {}
        for clip in ids:
            act = activity_of(ws, clip)
            res = preview_clip(ws, clip, root / "s.png")
            marked[clip] = res.silent
            assert res.silent == [s for s, a in enumerate(act.active) if not a]
            # the threshold line drawn on the level panel is the rule sample used
            thr = sound_threshold(act)
            for lv, a in zip(act.level_db, act.active, strict=True):
                assert (lv >= thr and lv > act.params["abs_silence_db"]) == a
    finally:
        ws.close()
    assert any(marked.values())  # the synthetic world has silent seconds


def test_png_ownership_check(tmp_path):
    assert not is_our_png(tmp_path / "absent.png")
    (tmp_path / "t.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0\0")  # truncated
    assert not is_our_png(tmp_path / "t.png")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    body = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0\0"))
    (tmp_path / "late.png").write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"tEXt", b"Software\0" + SOFTWARE.encode())
                                        + chunk(b"IEND", b""))
    assert is_our_png(tmp_path / "late.png")  # a text chunk after the image data counts too


def test_waveform_axis_is_scaled_to_the_peak_in_dbfs():
    lim, ticks, labels = wave_axis(0.5)
    assert lim == pytest.approx(0.56) and ticks == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert labels == ["-6", "-12", "", "-12", "-6"]
    assert wave_axis(1.0)[2][-1] == "0"
    assert wave_axis(0.0) == (1.0, [], [])


def test_a_proposal_the_review_deleted_is_not_drawn(ws5, tmp_path):
    import shutil

    from avsbench_tools.mask_store import save_versions

    root = tmp_path / "ws"
    shutil.copytree(ws5[0], root)
    clip = ws5[1][0]
    ws = open_workspace(root)
    try:
        proposals = shown_masks(ws, clip, True)
        by_second: dict[int, list] = {}
        for v in proposals:
            by_second.setdefault(v.second, []).append(v)
        second, objs = max(by_second.items(), key=lambda kv: len(kv[1]))
        assert objs and all(v.kind == "proposal" for v in proposals)
        # the annotator kept every object of this second but the first, and reviewed one other second empty
        kept = [v.to_object_mask(root) for v in objs[1:]]
        empty = next(s for s in by_second if s != second)
        save_versions(ws, clip, kept, "review", "studio", {"test": "review"}, seconds=[second, empty])
        res = preview_clip(ws, clip, root / "m.png", masks=True)
        from avsbench_tools.preview.sheet import read_clip

        plan = read_clip(ws, clip, masks=True).plan
    finally:
        ws.close()
    drawn = {s: {(o.fid, o.kind) for o in objs} for s, objs in plan.by_second.items()}
    assert drawn.get(second, set()) == {(v.fid, "review") for v in objs[1:]}  # the deleted one is gone
    assert empty not in drawn  # reviewed empty: nothing drawn, no proposal comes back
    others = {s for s in by_second if s not in (second, empty)}
    assert others and all(drawn[s] == {(v.fid, "proposal") for v in by_second[s]} for s in others)
    assert res.objects == sum(len(x) for x in drawn.values()) == len(proposals) - len(objs) - len(by_second[empty]) + len(kept)
