"""push: the workspace's sampled frames as Label Studio tasks, its proposals as predictions.

One task per sampled frame (the frame, the clip's 16 kHz WAV with the frame's second named in the
header, the clip video for context); one prediction per task and proposal mask set (model_version
"<backend>:<settings hash>", one brush region per object, score = the lowest object confidence).
Every prediction is validated against the project's config before it is sent; tasks go in chunks,
and each chunk's task ids are recorded as soon as the server answers. A push that died (server
down, Ctrl-C) is finished by the next one with no duplicate: tasks and predictions the server holds
but the catalog does not are found by their keys (workspace id, clip, second, model version) and
recorded, never sent again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from avsbench_tools.catalog import MaskVersion
from avsbench_tools.catalog.studio import project_key
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.progress import Progress, no_progress
from avsbench_tools.studio import labelling as cfg
from avsbench_tools.studio.campaign import by_priority, check_overlap, settings
from avsbench_tools.studio.project import (
    Api,
    CheckedInterface,
    Project,
    StudioError,
    document_root,
    encode,
    ramped,
    server_name,
)
from avsbench_tools.studio.push_build import (
    Item,
    built,
    prediction_json,
    refresh_audio,
    sound_text,
    split_silent,
    task_json,
)

CHUNK = 100  # tasks per import request (the largest; the first requests are smaller: project.ramped)


@dataclass
class PushOptions:
    """clips: only these clip ids (default: every sampled clip). chunk_size: tasks per import request.
    document_root: the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: known for the
    workspace's own server, else found by asking the server for a frame under each folder from the
    workspace upwards). overlap: the fraction of frames Label Studio gives to two annotators (None: leave the
    project's setting). order: new tasks by need of a human, highest first (studio/priority.py)."""

    clips: list[str] | None = None
    chunk_size: int = CHUNK
    document_root: str | None = None
    overlap: float | None = None
    order: bool = False

    def check(self) -> None:
        """A one-line UsageError for an option out of range (before anything is asked of the server)."""
        check_overlap(self.overlap)


@dataclass
class PushResult:
    """What a push did. `adopted`: made by an earlier, interrupted push and recorded now."""

    url: str = ""
    project_id: int = 0
    project_created: bool = False
    clips: int = 0
    tasks_created: int = 0
    tasks_reused: int = 0
    tasks_adopted: int = 0
    predictions_sent: int = 0
    predictions_skipped: int = 0
    predictions_adopted: int = 0
    predictions_updated: int = 0  # predictions whose objects or labels changed (set-category), updated in place
    overlap_percent: int | None = None  # the project's overlap cohort (% of tasks for 2 annotators) when --overlap
    ordered: int = 0  # new tasks imported by priority (--order)
    reprioritised: int = 0  # tasks already on the server whose priority fields were set or changed (--order)
    model_versions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def push(ws, conn, opts: PushOptions | None = None, progress: Progress | None = None) -> PushResult:
    """Push the workspace to the Label Studio server of `conn` (studio.connect). See the module doc."""
    opts = opts or PushOptions()
    opts.check()
    progress = progress or no_progress
    cat = ws.catalog
    ids = [ws.resolve_clip(c) for c in opts.clips] if opts.clips else cat.clip_ids_done("sample")
    items = _plan(ws, ids)
    if not items:
        raise UsageError(f"nothing to push: no sampled frames in {ws.root}{' for those clips' if opts.clips else ''} "
                         f"(run avs-tools sample {ws.root} first)")
    conn.check()
    api = Api(conn)
    ws_id = cat.studio_ws_id()
    res = PushResult(url=api.url, clips=len({it.clip_id for it in items}))
    server = server_name(conn, ws_id)
    proj = _project(ws, api, ws_id, server, res, lambda: conn.check_serving(ws.root))
    key = project_key(server, proj.id)
    docroot = document_root(ws, conn, api, opts.document_root, items[0].frame.path)
    li = CheckedInterface(_interface(proj.label_config))
    tasks, preds = _reconcile(ws, api, proj, key, ws_id, items, res)
    todo_new = [it for it in items if (it.clip_id, it.frame.second) not in tasks]
    extra = by_priority(ws, items, todo_new, progress) if opts.order else {}  # sorts todo_new
    res.ordered = len(todo_new) if extra else 0

    def task(it: Item) -> dict:  # the task JSON, with its priority fields (--order)
        return {**(t := task_json(ws, it, docroot, ws_id, li, proj.id)),
                "data": {**t["data"], **extra.get((it.clip_id, it.frame.second), {})}}

    todo_more = [(tasks[(it.clip_id, it.frame.second)], it, p) for it in items
                 if (it.clip_id, it.frame.second) in tasks for p in it.preds
                 if (tasks[(it.clip_id, it.frame.second)], p.model_version) not in preds]
    res.tasks_reused = len(items) - len(todo_new)
    refresh_audio(ws, [it for it in items if (it.clip_id, it.frame.second) in tasks])  # a clip sampled again
    res.predictions_skipped = sum(len(it.preds) for it in items) - len(todo_more) - \
        sum(len(it.preds) for it in todo_new)
    total, done = len(todo_new) + len(todo_more), 0
    pending: list[tuple[int, str, list[int], str]] = []
    try:
        progress("pushing", done, total, "")
        for chunk, body in built(ramped(todo_new, opts.chunk_size),
                                  lambda ch: encode([task(it) for it in ch])):
            new_ids = api.import_tasks(proj.id, body, len(chunk))
            made = list(zip(chunk, new_ids, strict=True))
            cat.save_studio_tasks(key, [(it.clip_id, it.frame.second, tid) for it, tid in made])
            for it, tid in made:
                tasks[(it.clip_id, it.frame.second)] = tid
                pending += [p.row(tid) for p in it.preds]
            res.tasks_created += len(chunk)
            res.predictions_sent += sum(len(it.preds) for it in chunk)
            done += len(chunk)
            progress("pushing", done, total, chunk[-1].clip_id)
        def more(ch):
            return encode([{"task": tid, **prediction_json(ws, it, p, li, proj.id)} for tid, it, p in ch])

        for chunk, body in built(ramped(todo_more, opts.chunk_size), more):
            api.import_predictions(proj.id, body, len(chunk))
            pending += [p.row(tid) for tid, _, p in chunk]
            res.predictions_sent += len(chunk)
            done += len(chunk)
            progress("pushing", done, total, chunk[-1][1].clip_id)
        res.predictions_updated = _update_changed(ws, api, key, tasks, preds, items, li, proj.id)
        if pending:
            progress("pushing", done, total, "recording prediction ids")
            _record_predictions(ws, api, proj.id, key, pending, newest=True,
                                in_project=proj.prediction_number + res.predictions_sent)
    except KeyboardInterrupt:
        raise Interrupted(done, total - done, "tasks and predictions; the next push records what the server "
                                               "already holds") from None
    except StudioError as exc:
        raise StudioError(f"{exc}; {res.tasks_created} new tasks recorded: run avs-tools push {ws.root} again "
                          "to finish (nothing is duplicated)") from None
    if api.task_number(proj.id) != len(cat.studio_tasks(key)):  # an import of an interrupted push landed late
        _reconcile_tasks(ws, api, proj.id, key, ws_id, res)
    settings(api, proj, opts, res, extra, ws_id)
    _finish(ws, proj, api, key, items, res)
    return res


# -- the plan: what the catalog says should be on the server ------------------------------------------
def _plan(ws, clip_ids: list[str]) -> list[Item]:
    from avsbench_tools.sample import activity_of

    cat = ws.catalog
    items = []
    sources = {s.source_id: s for s in cat.sources()}
    for cid in clip_ids:
        frames = cat.frames(cid)
        clip = cat.clip(cid)
        if not frames or clip is None:
            continue
        frames = _needed(ws, clip, frames, sources.get(clip.source_id))
        audio = cat.audio(cid)
        sets: dict[str, list[MaskVersion]] = {}
        for v in cat.mask_versions(cid, ["proposal"]):
            sets.setdefault(v.settings_hash or "", []).append(v)
        ordered = sorted(sets.items(), key=lambda kv: min(v.version_id for v in kv[1]))  # oldest set first
        covered = {h: set(cat.mask_set_seconds(cid, "proposal", h) or []) | {v.second for v in vs}
                   for h, vs in ordered}
        activity = activity_of(ws, cid)
        for f in frames:
            preds = [p for h, vs in ordered if f.second in covered[h]
                     for p in split_silent(f"{vs[0].backend}:{h}", f.second,
                                           sorted((v for v in vs if v.second == f.second), key=lambda v: v.fid),
                                           clip.category, activity)]
            items.append(Item(cid, f, clip.seconds, audio.wav_path if audio else None, clip.path, clip.category,
                               preds, fps=clip.fps, n_frames=clip.n_frames, sound=sound_text(activity, f.second)))
    return items


def _needed(ws, clip, frames: list, src) -> list:
    """The frames the export will supervise for the clip's current form (completeness.needed_seconds: S4/MS3 by the
    recipe's split rule, AVSS v1s train the first, v1m/v2 all; a clip without a split yet, all). The form follows
    the masks the clip shows (reviews, else its newest proposals); while an unreviewed second's classes come from a
    backend that does not name them (motion), the single/multi-source form is not decided: every frame (export's
    rule, completeness.clip_form)."""
    from avsbench_tools.completeness import needed_seconds
    from avsbench_tools.mask_store import reviewed_seconds, shown_masks

    masks = shown_masks(ws, clip.clip_id, include_unreviewed=True)
    need = needed_seconds(ws.recipe, clip, len(frames), masks, src, reviewed_seconds(ws, clip.clip_id))
    return [f for f in frames if f.second in need] or frames


# -- the project ----------------------------------------------------------------------------------------
def _project(ws, api: Api, ws_id: str, server: str, res: PushResult, check_serving) -> Project:
    """The workspace's project, found or made. `check_serving` (connect's: can the server serve the workspace's
    media?) runs before an existing project is changed, and right after a new one is made, which is deleted again
    when the answer is no: a refusal leaves nothing behind (and on a server without any project, the check names
    the new one instead of making and deleting a scratch project)."""
    cat, recipe = ws.catalog, ws.recipe
    pid = cat.studio_project(server)
    proj = api.project(pid) if pid is not None else None
    if proj is not None and not proj.is_ours(ws_id):
        proj = None  # the server was reset and the id now names another workspace's project
    if proj is None:
        proj = api.find_project(ws_id)
        if proj is not None:
            res.notes += _same_server(ws, api, proj.id, ws_id, project_key(server, proj.id))
    instructions = cfg.instructions(recipe)
    if proj is None:
        title = f"{Path(os.path.abspath(ws.root)).name} ({recipe.name})"
        proj = api.create_project(title, ws_id, cfg.label_config(recipe), instructions)
        try:
            check_serving()
        except BaseException:
            api.request("DELETE", f"api/projects/{proj.id}/", what=f"deleting project {proj.id} (the check failed)")
            raise
    else:
        check_serving()
        missing = cfg.check_config(proj.label_config, recipe)
        unknown = cfg.unknown_controls(proj.label_config, recipe)
        if unknown:
            raise UsageError(f"project {proj.id} at {api.url} was edited by hand: its labelling config has "
                             f"{'; '.join(unknown)}, which the recipe {recipe.name} does not know (pull could not "
                             "use what is painted with them). Remove them in the project's settings (Labeling "
                             "Interface), or add the categories to the recipe")
        if missing:
            raise UsageError(f"project {proj.id} at {api.url} was edited by hand: its labelling config lacks "
                             f"{'; '.join(missing)}. Restore them in the project's settings (Labeling Interface), "
                             "or delete the project and push again to make a new one")
        if " ".join(proj.instructions.split()) != " ".join(instructions.split()):
            api.update_project(proj.id, expert_instruction=instructions, show_instruction=True)
    if proj.id != pid:
        cat.set_studio_project(server, proj.id)
    api.ensure_storages(proj.id, ws.root)
    res.project_id, res.project_created = proj.id, proj.created
    return proj


def _same_server(ws, api: Api, pid: int, ws_id: str, key: str) -> list[str]:
    """A project found by the workspace's marker under a server name the catalog has no project for: when the
    catalog holds it under another name (the same server reached by another URL) with task ids the server
    lists, its rows move to this name, so nothing is adopted or pulled a second time."""
    cat = ws.catalog
    others = [k for k in cat.studio_project_keys("") if k.endswith(f"#{pid}") and k != key]
    if not others:
        return []
    _, every = api.task_keys(pid, ws_id)
    notes = []
    for old in others:
        ids = set(cat.studio_tasks(old).values())
        if ids and ids <= every:
            cat.merge_studio_project(old, key)
            notes.append(f"project {pid} was recorded for {old.rsplit('#', 1)[0]}: the same server, its records "
                         "are kept under this URL")
    return notes


def _interface(config: str):
    from label_studio_sdk.label_interface import LabelInterface

    return LabelInterface(config)


def _reconcile(ws, api: Api, proj: Project, key: str, ws_id: str, items: list[Item], res: PushResult):
    """The catalog's record of tasks and predictions, completed with what the server holds that an
    interrupted push did not record (found by our keys), cleared of tasks deleted on the server, and
    with duplicates of our tasks and predictions (a late import of an interrupted push) deleted."""
    cat = ws.catalog
    tasks = cat.studio_tasks(key)
    if proj.task_number != len(tasks):
        tasks = _reconcile_tasks(ws, api, proj.id, key, ws_id, res)
    preds = cat.studio_predictions(key)
    if proj.prediction_number != len(preds):
        want = [p.row(tasks[(it.clip_id, it.frame.second)])
                for it in items if (it.clip_id, it.frame.second) in tasks for p in it.preds]
        res.predictions_adopted = _record_predictions(ws, api, proj.id, key, want, newest=False,
                                                      in_project=proj.prediction_number)
        preds = cat.studio_predictions(key)
    return tasks, preds


def _reconcile_tasks(ws, api: Api, pid: int, key: str, ws_id: str, res: PushResult) -> dict[tuple[str, int], int]:
    cat = ws.catalog
    tasks = cat.studio_tasks(key)
    ours, every = api.task_keys(pid, ws_id)
    gone = [tid for tid in tasks.values() if tid not in every]
    if gone:
        cat.forget_studio_tasks(key, gone)
        res.notes.append(f"{len(gone)} tasks were deleted on the server: they are made again")
        tasks = cat.studio_tasks(key)
    adopt, extra, kept = [], [], 0
    for k, found in ours.items():
        keep = tasks.get(k)
        if keep not in found:  # made by a push that never heard the answer: the annotated one, else the oldest
            keep = min(found, key=lambda t: (-found[t], t))
            adopt.append((*k, keep))
        for tid, n_ann in found.items():
            if tid != keep:
                kept += n_ann > 0
                if not n_ann:
                    extra.append(tid)
    if adopt:
        cat.save_studio_tasks(key, adopt)
        res.tasks_adopted += len(adopt)
    if extra:
        api.delete("tasks", extra)
        res.notes.append(f"{len(extra)} duplicate tasks (made by an interrupted push after it stopped) were deleted")
    if kept:
        res.notes.append(f"{kept} duplicate tasks with annotations were kept: see the project's Data Manager")
    return cat.studio_tasks(key)


def _update_changed(ws, api: Api, key: str, tasks: dict, preds: dict, items: list[Item], li, pid: int) -> int:
    """Update on the server the predictions whose content changed since they were sent (their digest:
    objects and labels, e.g. after set-category), so annotators see the new labels. A prediction pushed
    before digests existed counts as changed when its clip's category was changed since."""
    cat = ws.catalog
    digests = cat.prediction_digests(key)
    changed_clips = {it.clip_id for it in items if cat.category_changes(it.clip_id)}
    update, adopt = [], []
    for it in items:
        tid = tasks.get((it.clip_id, it.frame.second))
        for p in it.preds:
            if tid is None or (tid, p.model_version) not in preds:
                continue
            old = digests.get((tid, p.model_version))
            if old == p.digest:
                continue
            if old is None and it.clip_id not in changed_clips:
                adopt.append((tid, p.model_version, p.digest))
            else:
                update.append((tid, it, p))
    for tid, it, p in update:
        api.update_prediction(pid, tid, preds[(tid, p.model_version)], prediction_json(ws, it, p, li, pid))
        cat.set_prediction_digests(key, [(tid, p.model_version, p.digest)])
    if adopt:
        cat.set_prediction_digests(key, adopt)
    return len(update)


def _record_predictions(ws, api: Api, pid: int, key: str, rows: list[tuple[int, str, list[int], str]],
                        newest: bool, in_project: int) -> int:
    """Record the ids the server gave the predictions in `rows` (task id, model version, version ids)
    and delete any duplicate of them. newest: they were just sent (the newest id; all must be there);
    else adopt what is found (the oldest). Returns how many were recorded."""
    known = ws.catalog.studio_predictions(key)
    on_server = api.prediction_ids(pid, {r[0] for r in rows}, in_project)
    found, extra = [], []
    for tid, mv, vids, digest in rows:
        ids = on_server.get((tid, mv), [])
        keep = known.get((tid, mv)) if known.get((tid, mv)) in ids else (ids[-1] if newest else ids[0]) if ids else None
        if keep is None:
            continue
        if known.get((tid, mv)) != keep:
            found.append((tid, mv, keep, vids, digest))
        extra += [i for i in ids if i != keep]
    ws.catalog.save_studio_predictions(key, found)
    if extra:
        api.delete("predictions", extra)
    if newest and len(found) != len(rows):
        raise StudioError(f"Label Studio at {api.url} does not list {len(rows) - len(found)} of the predictions "
                          "just imported")
    return len(found)


def _finish(ws, proj: Project, api: Api, key: str, items: list[Item], res: PushResult) -> None:
    cat = ws.catalog
    tasks, preds = cat.studio_tasks(key), cat.studio_predictions(key)
    complete: dict[str, bool] = {}
    newest: dict[str, str] = {}
    for it in items:
        tid = tasks.get((it.clip_id, it.frame.second))
        ok = tid is not None and all((tid, p.model_version) in preds for p in it.preds)
        complete[it.clip_id] = complete.get(it.clip_id, True) and ok
        offered = [p for p in it.preds if not p.with_silent]
        if offered:
            newest[it.clip_id] = offered[-1].model_version
    versions = sorted(set(newest.values()))
    res.model_versions = versions
    show = versions[0] if len(versions) == 1 else ""
    if len(versions) > 1:
        res.notes.append(f"the clips' newest proposals come from {len(versions)} settings ({', '.join(versions)}): "
                         "the editor shows every prediction, and tasks are served in random order, not lowest "
                         "score first")
    if (proj.model_version or "") != show:
        api.update_project(proj.id, model_version=show)
    done = [c for c, ok in complete.items() if ok]
    cat.finish_many("push", done, {"url": api.url, "project": proj.id, "model_versions": versions})
