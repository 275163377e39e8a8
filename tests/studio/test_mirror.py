"""Issue #20, against the run's real Label Studio server: the catalog mirrors the project through deletions,
cancellations, relabels, bad annotations and config drift.

One sampled, pre-annotated workspace (1 clip, 5 frames) is built per module; each test pushes its own copy
(a new workspace id, so its own project) and annotates through the SDK as an annotator would. The commands (push,
pull, qa, status, export) run in the test's process (`cli_here`: the same exit code and output, without a Python
start and its imports per command); the command as a process is tested elsewhere (test_own_project, tests/cli)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from avsbench_tools.workspace import open_workspace
from tests.helpers import cli_here as cli
from tests.helpers.catalog_rows import stage_of
from tests.helpers.studio_push import learn_prediction_ids
from tests.helpers.studio_tasks import brush, build_workspace, rect


@pytest.fixture(scope="module")
def built(studio_server, tmp_path_factory) -> Path:
    root = studio_server.ws / "mirror-built"
    root.mkdir()
    return build_workspace(root, clips=1)


class Pushed:
    """A pushed copy of the built workspace: its path, project, tasks {second: id}, predictions {second: id}."""

    def __init__(self, srv, built: Path, name: str):
        self.srv, self.path = srv, srv.ws / name
        shutil.copytree(built, self.path, ignore=shutil.ignore_patterns(".lock"))
        con = sqlite3.connect(self.path / "catalog.sqlite")
        con.execute("DELETE FROM meta WHERE key='studio.ws_id'")  # a workspace of its own: its own project
        con.commit()
        con.close()
        r = self.cli("push")
        assert r.returncode == 0, r.stderr
        learn_prediction_ids(self.path, srv.url, srv.api_key)  # push records predictions without their ids
        ws = open_workspace(self.path)
        try:
            self.pid = ws.catalog.studio_project(srv.url)
            self.key = f"{srv.url}#{self.pid}"
            (self.clip,) = [c.clip_id for c in ws.catalog.clips()]
            self.category = ws.catalog.clip(self.clip).category
            self.tasks = {s: t for (_, s), t in ws.catalog.studio_tasks(self.key).items()}
            preds = {}  # the prediction holding the object: in a second the audio says is silent, the one apart
            for (t, _mv), pr in sorted(ws.catalog.studio_predictions(self.key).items(), key=lambda kv: kv[0][1]):
                if t not in preds or not ws.catalog.prediction_versions(self.key, preds[t]):
                    preds[t] = pr
            self.preds = {s: preds[t] for s, t in self.tasks.items()}
        finally:
            ws.close()
        self.client = srv.client()

    def cli(self, *args, **kw):
        return cli(*args[:1], self.path, *args[1:], "--url", self.srv.url,
                   env={"LABEL_STUDIO_API_KEY": self.srv.api_key}, **kw)

    def shown(self, s: int) -> list[dict]:
        """The prediction's result as the editor shows it (region ids o<fid>), without the audio's second region
        (studio.labelling.SECOND: not a mask, pull ignores it)."""
        return [dict(x, origin="prediction") for x in self.client.predictions.get(id=self.preds[s]).result
                if x.get("from_name") != "second"]

    def annotate(self, s: int, result: list[dict], **kw) -> int:
        return self.client.annotations.create(id=self.tasks[s], result=result, lead_time=5.0,
                                              parent_prediction=self.preds[s], **kw).id

    def catalog(self):
        return open_workspace(self.path)


def _paths_exist(path: Path) -> None:
    """Every mask file a row of the catalog names exists (mask versions and pulled regions, retracted too)."""
    con = sqlite3.connect(path / "catalog.sqlite")
    try:
        named = {r[0] for r in con.execute("SELECT path FROM mask_versions")}
        for (regions,) in con.execute("SELECT regions_json FROM studio_reviews"):
            named |= {g["path"] for g in json.loads(regions)}
    finally:
        con.close()
    missing = [p for p in named if not (path / p).is_file()]
    assert not missing, missing


def test_deleted_cancelled_and_task_deleted_reviews_are_retracted(studio_server, built, tmp_path):
    """Rows 2 and 3: cancelled, deleted annotation, deleted task -> retracted (history kept), frames pending,
    the clip partial; qa and export count only what the server holds and find every mask file."""
    p = Pushed(studio_server, built, "mirror-retract")
    painted = rect(0, 0, 50, 40, (120, 160))  # the deleted annotation's mask: export must never write it
    ids = {s: p.annotate(s, [brush("o0", painted, p.category, "prediction-changed")] if s == 1 else p.shown(s))
           for s in range(5)}
    r = p.cli("pull")
    assert r.returncode == 0 and "5 new annotations" in r.stdout and "1 clips fully reviewed" in r.stdout, r.stdout
    p.client.annotations.update(id=ids[0], was_cancelled=True, result=[])
    p.client.annotations.delete(id=ids[1])
    p.client.tasks.delete(id=p.tasks[2])
    r = p.cli("pull")
    assert r.returncode == 0, r.stderr
    assert "3 reviews retracted" in r.stdout and "0 clips fully reviewed, 1 partly" in r.stdout, r.stdout
    assert f"annotation {ids[1]} was deleted on the server" in r.stdout
    assert f"annotation {ids[0]} was cancelled on the server" in r.stdout
    assert "its task was deleted on the server" in r.stdout
    ws = p.catalog()
    try:
        live = {x.annotation_id for x in ws.catalog.studio_reviews([p.clip])}
        history = {x.annotation_id: x for x in ws.catalog.studio_reviews([p.clip], retracted=True)}
        assert live == {ids[0], ids[3], ids[4]} and set(history) == set(ids.values())
        assert history[ids[1]].retracted_why and history[ids[1]].regions  # kept as history, with its masks
        assert ws.catalog.review_seconds(p.clip) == {3, 4}
        assert stage_of(ws.catalog, p.clip, "pull").status == "partial"
    finally:
        ws.close()
    _paths_exist(p.path)
    qa = cli("qa", p.path, "--json")
    assert qa.returncode == 0, qa.stderr
    frames = json.loads(qa.stdout)["frames"]
    assert (frames["reviewed"], frames["annotations"], frames["cancelled"]) == (2, 2, 1), frames
    st = json.loads(cli("status", p.path, "--json").stdout)
    assert st["stages"]["pull"]["done"] == 0
    out = tmp_path / "rel"
    r = cli("export", p.path, out, "-q")
    assert r.returncode == 2 and "only some of their frames are reviewed" in r.stderr, r.stderr  # left out, said so
    r = cli("export", p.path, out, "--include-unreviewed", "-q")
    assert r.returncode == 0, r.stderr
    from PIL import Image

    (m,) = (out / "Multi-sources" / "ms3_data" / "gt_masks").glob(f"*/{p.clip}/{p.clip}_2.png")
    ws = p.catalog()
    try:
        (prop,) = [v for v in ws.catalog.mask_versions(p.clip, ["proposal"]) if v.second == 1]
        want = np.asarray(Image.open(p.path / prop.path).resize((224, 224), Image.NEAREST)) > 0
    finally:
        ws.close()
    gone = np.asarray(Image.fromarray(painted.astype(np.uint8) * 255).resize((224, 224), Image.NEAREST)) > 0
    assert not np.array_equal(gone, want)
    assert np.array_equal(np.asarray(Image.open(m)) > 0, want)  # the proposal, not the deleted review


def test_a_clip_without_a_live_review_is_not_partly_reviewed(studio_server, built):
    """A clip whose only annotation is cancelled, or whose only review is deleted on the server, has no reviewed
    frame: status counts it as not reviewed yet (it said "partly", against pull's and qa's count)."""
    p = Pushed(studio_server, built, "mirror-unreviewed")

    def pull_state() -> str:
        (row,) = [c for c in json.loads(cli("clips", p.path, "--json").stdout) if c["clip"] == p.clip]
        return row["stages"]["pull"]

    cancelled = p.annotate(0, p.shown(0))
    p.client.annotations.update(id=cancelled, was_cancelled=True, result=[])
    r = p.cli("pull")
    assert r.returncode == 0 and "1 cancelled" in r.stdout and "0 partly" in r.stdout, r.stdout
    assert pull_state() == "pending"
    kept = p.annotate(1, p.shown(1))
    assert p.cli("pull").returncode == 0 and pull_state() == "partial"
    p.client.annotations.delete(id=kept)
    r = p.cli("pull")
    assert r.returncode == 0 and "1 reviews retracted" in r.stdout, r.stdout
    assert pull_state() == "pending"
    st = json.loads(cli("status", p.path, "--json").stdout)["stages"]["pull"]
    assert st["done"] == 0 and st["pending"] >= 1


def test_set_category_reaches_the_annotators_and_stays(studio_server, built):
    """Row 4: push after set-category updates the predictions (new labels); a pull never brings the old
    category back, and an annotation still carrying it is reported."""
    p = Pushed(studio_server, built, "mirror-category")
    old = p.category
    new = "piano" if old != "piano" else "drum"
    p.annotate(0, p.shown(0))  # annotated before the change: the old label
    assert p.cli("pull").returncode == 0
    r = cli("set-category", p.path, "--clip", p.clip, "--category", new)
    assert r.returncode == 0, r.stderr
    r = p.cli("push")
    assert r.returncode == 0 and "5 predictions updated in place" in r.stderr, (r.stdout, r.stderr)
    assert "nothing to do" not in r.stdout
    labels = {s: [x["value"]["brushlabels"] for x in p.shown(s)] for s in range(5)}
    assert all(v == [[new]] for v in labels.values() if v), labels
    again = p.cli("push")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout
    p.annotate(1, p.shown(1))  # from the updated prediction: the new label
    stale = [dict(x, value=dict(x["value"], brushlabels=[old])) for x in p.shown(2)]
    p.annotate(2, stale)  # a stale label (e.g. a draft made before the push)
    r = p.cli("pull")
    assert r.returncode == 0, r.stderr
    assert f"old category '{old}'" in r.stdout, r.stdout
    qa = cli("qa", p.path)
    assert qa.returncode == 0 and "labels: 1 regions carry a label" in qa.stdout, qa.stdout
    assert json.loads(cli("qa", p.path, "--json").stdout)["frames"]["label_problems"] == 1
    ws = p.catalog()
    try:
        cats = {v.category for v in ws.catalog.mask_versions(p.clip, ["review"])}
        assert cats == {new}, cats
        assert {o.category for o in ws.catalog.objects(p.clip)} == {new}
    finally:
        ws.close()


def test_one_bad_annotation_never_blocks_the_rest(studio_server, built):
    """Row 5: a truncated brush RLE is listed (task, clip, second, reason) and skipped, the rest stored, the exit
    code says so, status shows it; fixed in Label Studio, the next pull stores it."""
    p = Pushed(studio_server, built, "mirror-bad")
    good = p.annotate(0, p.shown(0))
    bad_result = p.shown(1)
    bad_result[0]["value"]["rle"] = bad_result[0]["value"]["rle"][:7]  # truncated
    bad = p.annotate(1, bad_result)
    wrong_size = [dict(x, original_width=x["original_width"] * 3) for x in p.shown(3)]
    odd = p.annotate(3, wrong_size)
    r = p.cli("pull")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "1 new annotations" in r.stdout
    assert f"task {p.tasks[1]} (clip {p.clip}, second 1), annotation {bad}" in r.stderr
    assert f"task {p.tasks[3]} (clip {p.clip}, second 3), annotation {odd}" in r.stderr
    assert "2 annotations could not be used and were skipped" in r.stderr and "Traceback" not in r.stderr
    st = cli("status", p.path, "--failures")
    assert f"annotation {bad}" in st.stdout + st.stderr
    ws = p.catalog()
    try:
        assert {x.annotation_id for x in ws.catalog.studio_reviews([p.clip])} == {good}
    finally:
        ws.close()
    from avsbench_tools.studio.connect import connect
    from avsbench_tools.studio.pull import PullOptions, pull

    ws = open_workspace(p.path, lock="pull")
    try:  # tried again from the ledger (no cursor margin lists their tasks again), still bad: still listed
        res = pull(ws, connect(ws, p.srv.url, p.srv.api_key), PullOptions(margin_s=0))
        assert sorted(x.annotation_id for x in res.skipped) == [bad, odd] and res.tasks == 2
    finally:
        ws.close()
    p.client.annotations.update(id=bad, result=p.shown(1))
    p.client.annotations.update(id=odd, result=p.shown(3))
    r = p.cli("pull")
    assert r.returncode == 0 and "2 new annotations" in r.stdout, (r.stdout, r.stderr)
    ws = p.catalog()
    try:
        assert {x.annotation_id for x in ws.catalog.studio_reviews([p.clip])} == {good, bad, odd}
        assert not ws.catalog.failures("pull")
    finally:
        ws.close()


def test_config_drift_is_caught(studio_server, built):
    """Rows 6 and 7: a second BrushLabels control -> push refuses naming it, regions painted with it are
    reported and not stored as an empty review; a label outside the recipe keeps the proposal's category."""
    p = Pushed(studio_server, built, "mirror-drift")
    h, w = 120, 160
    outside = p.shown(0)
    outside[0]["value"] = dict(outside[0]["value"], brushlabels=["kazoo"])
    p.annotate(0, outside)
    r = p.cli("pull")
    assert r.returncode == 0, r.stderr
    assert "label 'kazoo' is not in the recipe" in r.stdout, r.stdout
    ws = p.catalog()
    try:
        (v,) = [v for v in ws.catalog.mask_versions(p.clip, ["review"]) if v.second == 0]
        assert v.category == p.category
    finally:
        ws.close()
    config = p.client.projects.get(id=p.pid).label_config
    drifted = config.replace('<Choices name="frame"', '<BrushLabels name="mask2" toName="image">\n'
                             f'    <Label value="{p.category}"/>\n  </BrushLabels>\n  <Choices name="frame"')
    p.client.projects.update(id=p.pid, label_config=drifted)
    r = p.cli("push")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'BrushLabels name="mask2"' in r.stderr
    other = dict(brush("r1", rect(10, 10, 60, 60, (h, w)), p.category), from_name="mask2")
    ann = p.annotate(1, [other])
    r = p.cli("pull")
    assert r.returncode == 1 and f"annotation {ann}" in r.stderr and "mask2 (brushlabels)" in r.stderr, r.stderr
    ws = p.catalog()
    try:
        assert 1 not in (ws.catalog.review_seconds(p.clip) or set())  # no empty review of the frame
        assert np.all([x.second != 1 for x in ws.catalog.studio_reviews([p.clip])])
    finally:
        ws.close()


@pytest.fixture(scope="module")
def built_avss(studio_server) -> Path:
    root = studio_server.ws / "mirror-built-avss"
    root.mkdir()
    path = build_workspace(root, clips=1, recipe="avss", category="guitar")
    ws = open_workspace(path)
    try:
        (clip,) = [c.clip_id for c in ws.catalog.clips()]
        ws.catalog.set_splits({clip: "train"})  # AVSS train: v1s supervises frame 0 only, v1m every frame
    finally:
        ws.close()
    return path


def test_completeness_follows_the_exported_form(studio_server, built_avss, tmp_path):
    """Row 8: reviews of seconds 0, 2, 4 of an AVSS train clip showing two classes make it v1m (all five frames
    supervised): not reviewed, by pull, status, qa and export alike; with one class it is v1s and complete."""
    p = Pushed(studio_server, built_avss, "mirror-avss")
    assert p.category == "guitar"
    p.annotate(0, p.shown(0))
    two = [dict(x, value=dict(x["value"], brushlabels=["piano"])) for x in p.shown(2)]
    second = p.annotate(2, two)
    p.annotate(4, p.shown(4))
    r = p.cli("pull")
    assert r.returncode == 0 and "0 clips fully reviewed, 1 partly" in r.stdout, (r.stdout, r.stderr)
    st = json.loads(cli("status", p.path, "--json").stdout)
    assert st["stages"]["pull"]["done"] == 0
    qa = json.loads(cli("qa", p.path, "--json").stdout)["frames"]
    assert (qa["clips_reviewed"], qa["clips_partial"]) == (0, 1)
    r = cli("export", p.path, tmp_path / "v1m", "-q")
    assert r.returncode == 2 and "only some of their frames are reviewed" in r.stderr, r.stderr
    p.client.annotations.update(id=second, result=p.shown(2))  # one class after all: v1s, frame 0 is enough
    r = p.cli("pull")
    assert r.returncode == 0 and "1 clips fully reviewed, 0 partly" in r.stdout, (r.stdout, r.stderr)
    assert "pull: 0 new annotations and 1 changed (" in r.stdout, r.stdout  # a relabel is not a new annotation
    assert json.loads(cli("status", p.path, "--json").stdout)["stages"]["pull"]["done"] == 1
    assert json.loads(cli("qa", p.path, "--json").stdout)["frames"]["clips_reviewed"] == 1
    out = tmp_path / "v1s"
    r = cli("export", p.path, out, "-q")
    assert r.returncode == 0, r.stderr
    (d,) = (out / "v1s").iterdir()
    assert sorted(x.name for x in (d / "labels_semantic").iterdir()) == ["0.png"]


def test_one_server_under_two_urls_counts_each_annotation_once(studio_server, built):
    """Row 1 on an outside server: pushed at 127.0.0.1, then reached as localhost: push recognises the project's
    records (nothing adopted as if an interrupted push made it), pull stores nothing twice."""
    p = Pushed(studio_server, built, "mirror-two-urls")
    p.annotate(0, p.shown(0))
    assert p.cli("pull").returncode == 0
    other = studio_server.url.replace("127.0.0.1", "localhost")
    env = {"LABEL_STUDIO_API_KEY": studio_server.api_key}
    r = cli("push", p.path, "--url", other, env=env)
    assert r.returncode == 0 and "nothing to do" in r.stdout, (r.stdout, r.stderr)
    assert "interrupted push" not in r.stderr and "the same server" in r.stderr, r.stderr
    r = cli("pull", p.path, "--url", other, env=env)
    assert r.returncode == 0 and "pull: 0 new annotations" in r.stdout, (r.stdout, r.stderr)
    frames = json.loads(cli("qa", p.path, "--json").stdout)["frames"]
    assert (frames["reviewed"], frames["annotations"]) == (1, 1), frames
