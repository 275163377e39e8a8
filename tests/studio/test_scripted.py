"""The scripted annotator of `make demo` (avsbench_tools/studio/scripted.py), through the run's real Label Studio
server: as its own user it accepts one task, grows one mask, deletes the object of a second the audio says is
silent and relabels one object; pull stores them as its annotations and qa reads each decision as what it is.
A re-run adds nothing. The pure decisions: no relabel on a single-source recipe.

The first run is a process (`python -m`, as make demo runs it); the re-run and push, pull and qa run in the test's
process (the same exit code and output, without a Python start per command)."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest

from avsbench_tools.masks import ObjectMask
from avsbench_tools.studio.convert import from_studio, to_studio
from avsbench_tools.studio.scripted import SCRIPTED_EMAIL, SECRETS_FILE, plan
from tests.helpers import cli_here as cli
from tests.helpers.studio_tasks import build_workspace

SCRIPTED = ["-m", "avsbench_tools.studio.scripted"]


@pytest.fixture(scope="module")
def scripted(studio_server):
    srv = studio_server
    root = srv.ws / "b-scripted"
    root.mkdir()
    path = build_workspace(root, clips=1)  # seed 5: second 0 silent (with a proposal), 1-4 sounding
    env = {"LABEL_STUDIO_API_KEY": srv.api_key}
    r = cli("push", path, "--url", srv.url, "-q", env=env)
    assert r.returncode == 0, r.stderr
    import subprocess
    import sys

    def run():
        import os

        return subprocess.run([sys.executable, *SCRIPTED, str(path), "--url", srv.url], capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, **env))

    def run_here():
        import contextlib
        import io

        from avsbench_tools.studio.scripted import main

        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            mp.setenv("LABEL_STUDIO_API_KEY", srv.api_key)
            rc = main([str(path), "--url", srv.url])
        return subprocess.CompletedProcess(SCRIPTED, rc, out.getvalue(), err.getvalue())

    first = run()
    assert first.returncode == 0, first.stderr
    again = run_here()
    assert again.returncode == 0, again.stderr
    pulled = cli("pull", path, "--url", srv.url, env=env)
    assert pulled.returncode == 0, pulled.stderr
    return path, first.stdout, again.stdout


def test_scripted_annotator_decisions_reach_qa_as_its_own(scripted):
    path, out, again = scripted
    lines = [x for x in out.splitlines() if x.startswith(f"scripted annotator ({SCRIPTED_EMAIL}): ")]
    acts = {x.split(": ", 1)[1].split()[0]: x for x in lines}
    assert sorted(acts) == ["accept", "delete_silent", "edit", "relabel"], out
    assert " second 0: silent second: object 0 deleted" in acts["delete_silent"]
    assert "relabelled guitar -> piano" in acts["relabel"]  # the next label of the recipe
    assert "nothing added" in again and "annotation" not in again.replace("nothing added", "")
    secret = path / "studio" / SECRETS_FILE
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and SCRIPTED_EMAIL in secret.read_text()

    r = cli("qa", path, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    sec = {a: int(x.split(" second ")[1].split(":")[0]) for a, x in acts.items()}
    got = {o["second"]: (o["outcome"], o["relabelled_to"], o["silent"]) for o in rep["objects"]}
    assert got[sec["accept"]] == ("kept", None, None)
    assert got[sec["edit"]] == ("edited", None, None)
    assert got[sec["delete_silent"]] == ("deleted_silent", None, "marked")
    assert got[sec["relabel"]] == ("kept", "piano", None)
    edited = next(o for o in rep["objects"] if o["second"] == sec["edit"])
    assert 0.3 < edited["iou"] < 1.0  # grown by 2 px: a real, small edit
    assert [a["annotator"] for a in rep["annotators"]] == [SCRIPTED_EMAIL]
    assert rep["annotators"][0]["submitted"] == 4 and rep["time"]["annotations_timed"] == 4
    assert rep["time"]["per_reviewed_frame_s"] is not None and rep["time"]["per_reviewed_frame_s"] < 30


def _task(tid, second, labels=("guitar",), annotations=0):
    mask = np.zeros((8, 10), bool)
    mask[2:5, 3:6] = True
    res = [to_studio(ObjectMask(second, i, lab, mask), lab, mask.shape) for i, lab in enumerate(labels)]
    return {"id": tid, "data": {"clip_id": "c", "second": second, "height": 8, "width": 10},
            "total_annotations": annotations,
            "predictions": [{"id": 100 + tid, "score": 0.5, "result": res}]}


def test_plan_relabels_only_where_the_recipe_allows_and_skips_annotated_tasks():
    tasks = [_task(1, 0), _task(2, 1, annotations=1), _task(3, 2), _task(4, 3)]
    single = plan(tasks, {"c": {0}}, ["guitar", "dog"], multi_source=False)
    assert [(d.action, d.second) for d in single] == [("accept", 2), ("edit", 3), ("delete_silent", 0)]
    (grown,) = single[1].result
    assert from_studio(grown, 3, 0, (8, 10)).mask.sum() == 9 + 12 + 16  # 3x3 + two 4-neighbour rings
    assert single[2].result == [{"from_name": "frame", "to_name": "image", "type": "choices",
                                 "value": {"choices": ["no sounding object"]}}]
    multi = plan(tasks[:3] + [_task(5, 4, ("guitar", "dog"))], {"c": set()}, ["guitar", "dog"], multi_source=True)
    assert [(d.action, d.second) for d in multi] == [("accept", 0), ("edit", 2), ("relabel", 4)]
    assert [r["value"]["brushlabels"] for r in multi[2].result] == [["dog"], ["dog"]]
    assert multi[2].result[0]["origin"] == "prediction-changed" and multi[2].result[1]["origin"] == "prediction"
