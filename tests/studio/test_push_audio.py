"""The audio decides what push proposes (issue 22 item 1), against the run's real Label Studio server.

In a second the sample stage found silent, or for an object preannotate's gate found silent, the object is
not a region of the prediction annotators accept: it is offered apart in a second, low-score prediction
(model version + " (includes objects believed silent)"), and a silent second's accepted prediction pre-sets
"no sounding object". Each task states the audio analysis of its second. qa flags reviewed masks in seconds
the audio says are silent.
"""

from __future__ import annotations

import httpx

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
    tasks = _server_tasks(srv, pid)
    seconds = sorted((t["data"]["clip_id"], t["data"]["second"]) for t in tasks)
    assert seconds == [(a, s) for s in range(5)] + [(b, s) for s in range(5)]

    # item 4: the audio excerpts of tasks gone (deleted on the server, their frames no longer pushed) are removed by
    # push and by pull; files the tool did not write stay
    excerpts = path / "audio" / "seconds"
    foreign = [excerpts / a / "7.wav", excerpts / a / "notes.txt", excerpts / b / "1.wav.bak"]
    for f in foreign:
        f.write_bytes(b"not an excerpt")
    con = sqlite3.connect(path / "catalog.sqlite")
    con.execute("UPDATE clips SET split='train' WHERE clip_id=?", (a,))  # train again: only the first frame
    con.commit()
    con.close()
    client = srv.client()
    for t in tasks:
        if t["data"]["clip_id"] == a and t["data"]["second"] > 0:
            client.tasks.delete(id=t["id"])
    r = cli("push", path, "--url", srv.url, env=env)
    assert r.returncode == 0 and "4 audio excerpts no task uses any more were removed" in r.stderr, r.stdout + r.stderr
    assert sorted(f.name for f in (excerpts / a).iterdir()) == ["0.wav", "7.wav", "notes.txt"]
    assert sorted(f.name for f in (excerpts / b).iterdir()) == ["0.wav", "1.wav", "1.wav.bak", "2.wav", "3.wav",
                                                                 "4.wav"]
    assert all(f.read_bytes() == b"not an excerpt" for f in foreign)
    gone = next(t for t in tasks if (t["data"]["clip_id"], t["data"]["second"]) == (b, 3))
    body = (excerpts / b / "3.wav").read_bytes()
    client.tasks.delete(id=gone["id"])
    r = cli("pull", path, "--url", srv.url, env=env)
    assert r.returncode == 0 and "1 audio excerpts of tasks gone removed" in r.stdout, r.stdout + r.stderr
    assert not (excerpts / b / "3.wav").exists() and (excerpts / b / "4.wav").exists()
    r = cli("push", path, "--url", srv.url, env=env)  # the frame is still supervised: its task and audio come back
    assert r.returncode == 0 and r.stdout.startswith("push: 1 tasks created, 5 already there"), r.stdout + r.stderr
    assert (excerpts / b / "3.wav").read_bytes() == body


def test_a_frame_without_proposal_gets_the_audio_second_and_qa_counts_no_proposal(studio_server, built):
    """Item 5 for every task: a frame no proposal set covers gets the audio's second region in a prediction of its own
    (AUDIO_ONLY: no object; "no sounding object" pre-set in a silent second), never taken for a proposal."""
    import sqlite3

    from avsbench_tools.studio.labelling import SECOND_LABEL
    from avsbench_tools.studio.push_build import AUDIO_ONLY

    server, path = studio_server, fresh(built, "no-proposal")
    con = sqlite3.connect(path / "catalog.sqlite")
    bare = con.execute("SELECT clip_id FROM clips ORDER BY clip_id").fetchone()[0]
    con.execute("DELETE FROM mask_versions WHERE clip_id=? AND kind='proposal'", (bare,))
    con.execute("DELETE FROM mask_sets WHERE clip_id=?", (bare,))
    con.commit()
    con.close()
    res = _push(path, server.url, server.api_key)
    assert AUDIO_ONLY not in res.model_versions and len(res.model_versions) == 1
    ws = open_workspace(path)
    try:
        act = activity_of(ws, bare)
        pid = ws.catalog.studio_project(server.url)
    finally:
        ws.close()
    tasks = [t for t in _server_tasks(server, pid) if t["data"]["clip_id"] == bare]
    assert len(tasks) == 5
    for t in tasks:
        (p,) = t["predictions"]
        assert p["model_version"] == AUDIO_ONLY and p["score"] is None
        (region,) = [r for r in p["result"] if r["type"] == "labels"]
        assert region["value"]["labels"] == [SECOND_LABEL] and region["readonly"]
        assert (region["value"]["start"], region["value"]["end"]) == (0.0, 1.0)
        assert not [r for r in p["result"] if r["type"] == "brushlabels"]
        silent = not act.active[t["data"]["second"]]
        assert [r["value"]["choices"] for r in p["result"] if r["type"] == "choices"] == ([[NO_SOUND]] if silent else [])
    # an annotation that starts from it is one without a known proposal in qa (not "every object added")
    from tests.helpers.studio_tasks import brush, rect

    t = next(t for t in tasks if act.active[t["data"]["second"]])
    p = t["predictions"][0]
    server.client().annotations.create(id=t["id"], result=[*p["result"], brush("m1", rect(10, 10, 50, 40), "guitar")],
                                       lead_time=3.0, parent_prediction=p["id"])
    r = cli("pull", path, "--url", server.url, env={"LABEL_STUDIO_API_KEY": server.api_key})
    assert r.returncode == 0, r.stderr
    ws = open_workspace(path)
    try:
        rep = qa(ws)
    finally:
        ws.close()
    assert rep.frames["without_known_proposal"] == 1 and rep.frames["reviewed"] == 1
    assert _push(path, server.url, server.api_key).predictions_sent == 0  # recorded like any prediction: not sent again


def test_tasks_pushed_before_the_audio_excerpt_get_it_in_place(studio_server, built):
    """Item 3: a task whose data names the whole clip's WAV (pushed before tasks had their audio from their second)
    gets the excerpt and its data updated by the next push, in place: same task, its annotation kept."""
    from urllib.parse import quote

    server, path = studio_server, fresh(built, "old-audio")
    _push(path, server.url, server.api_key)
    ws = open_workspace(path)
    try:
        pid = ws.catalog.studio_project(server.url)
        wav = {c.clip_id: ws.catalog.audio(c.clip_id).wav_path for c in ws.catalog.clips()}
    finally:
        ws.close()
    c = server.client()
    before = {t["id"]: t for t in _server_tasks(server, pid)}
    t = next(t for t in before.values() if t["data"]["second"] == 2)
    clip, excerpt = t["data"]["clip_id"], path / "audio" / "seconds" / t["data"]["clip_id"] / "2.wav"
    body = excerpt.read_bytes()
    old = {k: v for k, v in t["data"].items() if k != "audio_start"}
    old["audio"] = f"/data/local-files/?d={quote(path.name)}/{wav[clip]}"  # how tasks were pushed before
    old["note"] = old["note"].replace("the audio player starts at it (0 s there is second 2 of the clip)",
                                      "the audio player holds the whole clip")
    httpx.patch(f"{server.url}/api/tasks/{t['id']}/", json={"data": old},
                headers={"Authorization": f"Token {server.api_key}"}, timeout=60).raise_for_status()
    excerpt.unlink()
    main = t["predictions"][0]
    ann = c.annotations.create(id=t["id"], result=main["result"], lead_time=2.0, parent_prediction=main["id"])
    res = _push(path, server.url, server.api_key)
    assert res.audio_updated == 1 and res.tasks_created == 0 and res.predictions_sent == 0
    after = {x["id"]: x for x in _server_tasks(server, pid)}
    assert set(after) == set(before)
    assert after[t["id"]]["data"] == t["data"]  # the audio from its second again, its header too
    assert [a["id"] for a in after[t["id"]]["annotations"]] == [ann.id]
    assert excerpt.read_bytes() == body
    assert all(after[i]["data"] == before[i]["data"] for i in before)
    assert _push(path, server.url, server.api_key).audio_updated == 0
