"""The audio decides what push proposes (issue 22 item 1), against the run's real Label Studio server.

In a second the sample stage found silent, or for an object preannotate's gate found silent, the object is
not a region of the prediction annotators accept: it is offered apart in a second, low-score prediction
(model version + " (includes objects believed silent)"), and a silent second's accepted prediction pre-sets
"no sounding object". Each task states the audio analysis of its second. qa flags reviewed masks in seconds
the audio says are silent.
"""

from __future__ import annotations

from avsbench_tools.catalog import MaskVersion
from avsbench_tools.sample import activity_of
from avsbench_tools.studio.labelling import NO_SOUND
from avsbench_tools.studio.push_build import (
    SILENT_SCORE,
    SILENT_SUFFIX,
    UNVERIFIED,
    UNVERIFIED_SCORE,
    split_silent,
)
from avsbench_tools.studio.qa import qa
from avsbench_tools.workspace import open_workspace
from tests.helpers.studio_push import fresh
from tests.helpers.studio_push import push_ws as _push
from tests.helpers.studio_push import server_tasks as _server_tasks
from tests.helpers.studio_tasks import cli


def _v(fid: int, second: int, sounding: bool | None) -> MaskVersion:
    return MaskVersion(fid + 1, "c", second, fid, "proposal", "dog", 0.9, sounding, {}, "motion", "h", {},
                       f"m{fid}.png", "")


class _Act:
    active = [True, False]
    relative_db = [57.0, 1.04]


def test_split_silent_rule():
    """A sounding second: the gate's silent object goes apart; a silent second: nothing accepted, no-sound set."""
    main, apart = split_silent("motion:h", 0, [_v(0, 0, True), _v(1, 0, False)], "dog", _Act())
    assert [v.fid for v in main.versions] == [0] and not main.no_sound and not main.with_silent
    assert apart.model_version == "motion:h" + SILENT_SUFFIX and [v.fid for v in apart.versions] == [0, 1]
    assert apart.with_silent and main.digest != apart.digest
    main, apart = split_silent("motion:h", 1, [_v(0, 1, None)], "dog", _Act())
    assert main.versions == [] and main.no_sound and [v.fid for v in apart.versions] == [0]
    (only,) = split_silent("motion:h", 0, [_v(0, 0, True)], "dog", _Act())  # nothing silent: nothing apart
    assert [v.fid for v in only.versions] == [0]
    (only,) = split_silent("motion:h", 1, [_v(0, 1, True)], "dog", None)  # no activity record: as proposed
    assert not only.no_sound and [v.fid for v in only.versions] == [0]


def test_silent_seconds_are_proposed_as_silent_and_qa_flags_masks_painted_there(studio_server, built):  # noqa: F811
    server, path = studio_server, fresh(built, "audio-push")
    res = _push(path, server.url, server.api_key)
    ws = open_workspace(path)
    try:
        act = {c.clip_id: activity_of(ws, c.clip_id) for c in ws.catalog.clips()}
        gate = {(v.clip_id, v.second, v.fid): v.sounding for c in ws.catalog.clips()
                for v in ws.catalog.mask_versions(c.clip_id, ["proposal"])}
        pid = ws.catalog.studio_project(server.url)
    finally:
        ws.close()
    tasks = _server_tasks(server, pid)
    quiet = {(t["data"]["clip_id"], t["data"]["second"]) for t in tasks
             if not act[t["data"]["clip_id"]].active[t["data"]["second"]]}
    assert quiet and len(quiet) < len(tasks), "the world must have silent and sounding seconds"
    accepted = res.model_versions[0]
    assert not accepted.endswith(SILENT_SUFFIX) and server.client().projects.get(id=pid).model_version == accepted
    silent_task = None
    for t in tasks:
        clip, s = t["data"]["clip_id"], t["data"]["second"]
        rel = act[clip].relative_db[s]
        state = "silent" if (clip, s) in quiet else "sounding"
        assert t["data"]["sound"] == f"{state}: {rel:+.1f} dB over the clip's floor"
        assert t["data"]["sound"] in t["data"]["note"]
        by_mv = {p["model_version"]: p for p in t["predictions"]}
        main = by_mv[accepted]
        regions = [r for r in main["result"] if r["type"] == "brushlabels"]
        choices = [r["value"]["choices"] for r in main["result"] if r["type"] == "choices"]
        proposed = {fid for (c, sec, fid), snd in gate.items() if (c, sec) == (clip, s)}
        believed_silent = {fid for fid in proposed if (clip, s) in quiet or gate[(clip, s, fid)] is False}
        assert {int(r["id"][1:]) for r in regions} == proposed - believed_silent
        assert choices == ([[NO_SOUND]] if (clip, s) in quiet else [])
        # item 4: motion names no class: every region says so, the score is never certain, the header says so
        assert t["data"]["classes"].startswith(UNVERIFIED) and UNVERIFIED in t["data"]["note"]
        assert all(UNVERIFIED in r["meta"]["text"] for r in regions)
        assert not regions or main["score"] <= UNVERIFIED_SCORE
        apart = by_mv.get(accepted + SILENT_SUFFIX)
        assert (apart is not None) == bool(believed_silent)
        if apart is not None:
            assert apart["score"] == SILENT_SCORE < (main["score"] if main["score"] is not None else 1.0)
            objs = [r for r in apart["result"] if r["type"] == "brushlabels"]  # not the audio's second region
            marked = {int(r["id"][1:]) for r in objs if "believed silent" in r.get("meta", {}).get("text", [])}
            assert marked == believed_silent and {int(r["id"][1:]) for r in objs} == proposed
            if (clip, s) in quiet and silent_task is None:
                silent_task = (t, main, apart)
    assert silent_task is not None, "a silent second with a proposed object"
    (t, main, apart), others = silent_task, [t2 for t2 in tasks if (t2["data"]["clip_id"], t2["data"]["second"]) in quiet
                                             and t2["id"] != silent_task[0]["id"]]
    c = server.client()
    # one annotator accepts the objects believed silent (qa must flag them); another silent second is accepted as
    # proposed (no sounding object, no mask)
    c.annotations.create(id=t["id"], result=apart["result"], lead_time=4.0, parent_prediction=apart["id"])
    if others:
        o = others[0]
        om = next(p for p in o["predictions"] if p["model_version"] == accepted)
        c.annotations.create(id=o["id"], result=om["result"], lead_time=2.0, parent_prediction=om["id"])
    r = cli("pull", path, "--url", server.url, env={"LABEL_STUDIO_API_KEY": server.api_key})
    assert r.returncode == 0, r.stderr
    ws = open_workspace(path)
    try:
        rep = qa(ws)
        if others:
            o = others[0]
            assert "silent" in ws.catalog.clip_flags(o["data"]["clip_id"]).get(o["data"]["second"], ())
    finally:
        ws.close()
    flagged = {(m["clip_id"], m["second"], m["fid"]) for m in rep.silent_masks}
    want = {(t["data"]["clip_id"], t["data"]["second"], int(r["id"][1:])) for r in apart["result"]
            if r["type"] == "brushlabels"}
    assert flagged == want and rep.frames["masks_in_silent_seconds"] == len(want)
    assert all(m["pixels"] > 0 for m in rep.silent_masks)
    q = cli("qa", path)
    assert q.returncode == 0 and f"silent seconds: {len(want)} reviewed masks" in q.stdout, q.stdout + q.stderr



def test_push_sends_only_the_frames_the_export_supervises(studio_server):
    """Item 6: an S4 train clip pushes its first frame only (the export supervises no other), a test clip all five;
    when the clip's form changes (here its split), the next push sends the newly needed frames and nothing twice."""
    import sqlite3

    from tests.helpers.studio_tasks import build_workspace

    srv = studio_server
    root = srv.ws / "s4-first"
    root.mkdir()
    path = build_workspace(root, clips=2, recipe="avsbench-s4", category="playing_acoustic_guitar")
    con = sqlite3.connect(path / "catalog.sqlite")
    a, b = (r[0] for r in con.execute("SELECT clip_id FROM clips ORDER BY clip_id"))
    con.execute("UPDATE clips SET split='train' WHERE clip_id=?", (a,))
    con.execute("UPDATE clips SET split='test' WHERE clip_id=?", (b,))
    con.commit()
    env = {"LABEL_STUDIO_API_KEY": srv.api_key}
    r = cli("push", path, "--url", srv.url, env=env)
    assert r.returncode == 0 and r.stdout.startswith("push: 6 tasks created"), r.stdout + r.stderr
    ws = open_workspace(path)
    pid = ws.catalog.studio_project(srv.url)
    ws.close()
    seconds = sorted((t["data"]["clip_id"], t["data"]["second"]) for t in _server_tasks(srv, pid))
    assert seconds == [(a, 0)] + [(b, s) for s in range(5)]
    con.execute("UPDATE clips SET split='val' WHERE clip_id=?", (a,))  # val: every frame is supervised
    con.commit()
    con.close()
    r = cli("push", path, "--url", srv.url, env=env)
    assert r.returncode == 0 and r.stdout.startswith("push: 4 tasks created, 6 already there"), r.stdout + r.stderr
    seconds = sorted((t["data"]["clip_id"], t["data"]["second"]) for t in _server_tasks(srv, pid))
    assert seconds == [(a, s) for s in range(5)] + [(b, s) for s in range(5)]
