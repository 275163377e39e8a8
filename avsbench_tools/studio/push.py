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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from avsbench_tools.catalog import Frame, MaskVersion
from avsbench_tools.catalog.studio import project_key
from avsbench_tools.errors import AvsError, Interrupted, UsageError
from avsbench_tools.progress import Progress, no_progress
from avsbench_tools.studio import config as cfg
from avsbench_tools.studio.project import Api, Project, StudioError, document_root

CHUNK = 100  # tasks per import request


@dataclass
class PushOptions:
    """clips: only these clip ids (default: every sampled clip). chunk_size: tasks per import request.
    document_root: the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: known for the
    workspace's own server, else found by asking the server for a frame under each folder from the
    workspace upwards)."""

    clips: list[str] | None = None
    chunk_size: int = CHUNK
    document_root: str | None = None


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
    model_versions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Pred:
    model_version: str
    versions: list[MaskVersion]  # the set's objects in this second (may be none: an empty proposal)


@dataclass
class _Item:
    clip_id: str
    frame: Frame
    n_seconds: int
    wav: str | None
    video: str
    category: str | None
    preds: list[_Pred]


def push(ws, conn, opts: PushOptions | None = None, progress: Progress | None = None) -> PushResult:
    """Push the workspace to the Label Studio server of `conn` (studio.connect). See the module doc."""
    opts = opts or PushOptions()
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
    proj = _project(ws, api, ws_id, res)
    key = project_key(api.url, proj.id)
    docroot = document_root(ws, conn, api, opts.document_root, items[0].frame.path)
    li = _interface(proj.label_config)
    tasks, preds = _reconcile(ws, api, proj, key, ws_id, items, res)
    todo_new = [it for it in items if (it.clip_id, it.frame.second) not in tasks]
    todo_more = [(tasks[(it.clip_id, it.frame.second)], it, p) for it in items
                 if (it.clip_id, it.frame.second) in tasks for p in it.preds
                 if (tasks[(it.clip_id, it.frame.second)], p.model_version) not in preds]
    res.tasks_reused = len(items) - len(todo_new)
    res.predictions_skipped = sum(len(it.preds) for it in items) - len(todo_more) - \
        sum(len(it.preds) for it in todo_new)
    total, done = len(todo_new) + len(todo_more), 0
    pending: list[tuple[int, str, list[int]]] = []
    try:
        progress("pushing", done, total, "")
        for chunk, body in _built(_chunks(todo_new, opts.chunk_size),
                                  lambda ch: [_task(ws, it, docroot, ws_id, li, proj.id) for it in ch]):
            new_ids = api.import_tasks(proj.id, body)
            made = list(zip(chunk, new_ids, strict=True))
            cat.save_studio_tasks(key, [(it.clip_id, it.frame.second, tid) for it, tid in made])
            for it, tid in made:
                tasks[(it.clip_id, it.frame.second)] = tid
                pending += [(tid, p.model_version, [v.version_id for v in p.versions]) for p in it.preds]
            res.tasks_created += len(chunk)
            res.predictions_sent += sum(len(it.preds) for it in chunk)
            done += len(chunk)
            progress("pushing", done, total, chunk[-1].clip_id)
        def more(ch):
            return [{"task": tid, **_prediction(ws, it, p, li, proj.id)} for tid, it, p in ch]

        for chunk, body in _built(_chunks(todo_more, opts.chunk_size), more):
            api.import_predictions(proj.id, body)
            pending += [(tid, p.model_version, [v.version_id for v in p.versions]) for tid, _, p in chunk]
            res.predictions_sent += len(chunk)
            done += len(chunk)
            progress("pushing", done, total, chunk[-1][1].clip_id)
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
    _finish(ws, proj, api, key, items, res)
    return res


# -- the plan: what the catalog says should be on the server ------------------------------------------
def _plan(ws, clip_ids: list[str]) -> list[_Item]:
    cat = ws.catalog
    items = []
    for cid in clip_ids:
        frames = cat.frames(cid)
        clip = cat.clip(cid)
        if not frames or clip is None:
            continue
        audio = cat.audio(cid)
        sets: dict[str, list[MaskVersion]] = {}
        for v in cat.mask_versions(cid, ["proposal"]):
            sets.setdefault(v.settings_hash or "", []).append(v)
        ordered = sorted(sets.items(), key=lambda kv: min(v.version_id for v in kv[1]))  # oldest set first
        covered = {h: set(cat.mask_set_seconds(cid, "proposal", h) or []) | {v.second for v in vs}
                   for h, vs in ordered}
        for f in frames:
            preds = [_Pred(f"{vs[0].backend}:{h}", sorted((v for v in vs if v.second == f.second), key=lambda v: v.fid))
                     for h, vs in ordered if f.second in covered[h]]
            items.append(_Item(cid, f, clip.seconds, audio.wav_path if audio else None, clip.path, clip.category,
                               preds))
    return items


# -- the project ----------------------------------------------------------------------------------------
def _project(ws, api: Api, ws_id: str, res: PushResult) -> Project:
    cat, recipe = ws.catalog, ws.recipe
    pid = cat.studio_project(api.url)
    proj = api.project(pid) if pid is not None else None
    if proj is not None and not proj.is_ours(ws_id):
        proj = None  # the server was reset and the id now names another workspace's project
    proj = proj or api.find_project(ws_id)
    instructions = cfg.instructions(recipe)
    if proj is None:
        title = f"{Path(os.path.abspath(ws.root)).name} ({recipe.name})"
        proj = api.create_project(title, ws_id, cfg.label_config(recipe), instructions)
    else:
        missing = cfg.check_config(proj.label_config, recipe)
        if missing:
            raise UsageError(f"project {proj.id} at {api.url} was edited by hand: its labelling config lacks "
                             f"{'; '.join(missing)}. Restore them in the project's settings (Labeling Interface), "
                             "or delete the project and push again to make a new one")
        if " ".join(proj.instructions.split()) != " ".join(instructions.split()):
            api.update_project(proj.id, expert_instruction=instructions, show_instruction=True)
    if proj.id != pid:
        cat.set_studio_project(api.url, proj.id)
    api.ensure_storages(proj.id, ws.root)
    res.project_id, res.project_created = proj.id, proj.created
    return proj


def _interface(config: str):
    from label_studio_sdk.label_interface import LabelInterface

    return LabelInterface(config)


def _reconcile(ws, api: Api, proj: Project, key: str, ws_id: str, items: list[_Item], res: PushResult):
    """The catalog's record of tasks and predictions, completed with what the server holds that an
    interrupted push did not record (found by our keys), cleared of tasks deleted on the server, and
    with duplicates of our tasks and predictions (a late import of an interrupted push) deleted."""
    cat = ws.catalog
    tasks = cat.studio_tasks(key)
    if proj.task_number != len(tasks):
        tasks = _reconcile_tasks(ws, api, proj.id, key, ws_id, res)
    preds = cat.studio_predictions(key)
    if proj.prediction_number != len(preds):
        want = [(tasks[(it.clip_id, it.frame.second)], p.model_version, [v.version_id for v in p.versions])
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


def _record_predictions(ws, api: Api, pid: int, key: str, rows: list[tuple[int, str, list[int]]],
                        newest: bool, in_project: int) -> int:
    """Record the ids the server gave the predictions in `rows` (task id, model version, version ids)
    and delete any duplicate of them. newest: they were just sent (the newest id; all must be there);
    else adopt what is found (the oldest). Returns how many were recorded."""
    known = ws.catalog.studio_predictions(key)
    on_server = api.prediction_ids(pid, {r[0] for r in rows}, in_project)
    found, extra = [], []
    for tid, mv, vids in rows:
        ids = on_server.get((tid, mv), [])
        keep = known.get((tid, mv)) if known.get((tid, mv)) in ids else (ids[-1] if newest else ids[0]) if ids else None
        if keep is None:
            continue
        if known.get((tid, mv)) != keep:
            found.append((tid, mv, keep, vids))
        extra += [i for i in ids if i != keep]
    ws.catalog.save_studio_predictions(key, found)
    if extra:
        api.delete("predictions", extra)
    if newest and len(found) != len(rows):
        raise StudioError(f"Label Studio at {api.url} does not list {len(rows) - len(found)} of the predictions "
                          "just imported")
    return len(found)


def _finish(ws, proj: Project, api: Api, key: str, items: list[_Item], res: PushResult) -> None:
    cat = ws.catalog
    tasks, preds = cat.studio_tasks(key), cat.studio_predictions(key)
    complete: dict[str, bool] = {}
    newest: dict[str, str] = {}
    for it in items:
        tid = tasks.get((it.clip_id, it.frame.second))
        ok = tid is not None and all((tid, p.model_version) in preds for p in it.preds)
        complete[it.clip_id] = complete.get(it.clip_id, True) and ok
        if it.preds:
            newest[it.clip_id] = it.preds[-1].model_version
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


def _built(chunks: Iterator[list], build) -> Iterator[tuple[list, list]]:
    """(chunk, build(chunk)) for each chunk, the next one built in a thread while the caller sends the
    current one (reading masks and encoding RLE overlaps the server's import). Errors surface in order."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avs-push-build")
    try:
        chunk = next(chunks, None)
        fut = pool.submit(build, chunk) if chunk is not None else None
        while chunk is not None:
            body = fut.result()
            nxt = next(chunks, None)
            fut = pool.submit(build, nxt) if nxt is not None else None
            yield chunk, body
            chunk = nxt
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# -- task and prediction JSON ----------------------------------------------------------------------------
def _chunks(seq: list, n: int) -> Iterator[list]:
    for i in range(0, len(seq), max(1, n)):
        yield seq[i:i + max(1, n)]


def _file_url(ws, docroot: Path, rel: str | None) -> str:
    if not rel:
        return ""
    p = Path(os.path.abspath(ws.abs(rel)))
    return "/data/local-files/?d=" + quote(p.relative_to(docroot).as_posix(), safe="/")


def _task(ws, it: _Item, docroot: Path, ws_id: str, li, pid: int) -> dict:
    f = it.frame
    w, h = _size(ws, f)
    note = (f"{it.clip_id}, second {f.second} (of {it.n_seconds}): listen to {f.second:.1f}-{f.second + 1:.1f} s of "
            f"the clip audio; the frame is at {f.pts:.2f} s")
    data = {"image": _file_url(ws, docroot, f.path), "audio": _file_url(ws, docroot, it.wav),
            "video": _file_url(ws, docroot, it.video), "clip_id": it.clip_id, "second": int(f.second),
            "frame_index": int(f.frame_index), "width": w, "height": h, "ws_id": ws_id, "note": note}
    return {"data": data, "predictions": [_prediction(ws, it, p, li, pid) for p in it.preds]}


def _size(ws, f: Frame) -> tuple[int, int]:
    if f.width and f.height:
        return int(f.width), int(f.height)
    from PIL import Image

    with Image.open(ws.abs(f.path)) as im:
        return im.size


def _labels(li) -> set[str]:
    if not hasattr(li, "_avs_labels"):
        li._avs_labels = set(cfg._tag(li, cfg.MASK).labels or [])
    return li._avs_labels


def _prediction(ws, it: _Item, p: _Pred, li, pid: int) -> dict:
    from avsbench_tools.studio.rle import encode

    w, h = _size(ws, it.frame)
    where = f"clip {it.clip_id} second {it.frame.second}"
    result = []
    for v in p.versions:
        mask = v.load(ws.root)
        if mask.shape != (h, w):
            raise AvsError(f"{where}: the mask of object {v.fid} ({v.path}) is {mask.shape[1]}x{mask.shape[0]}, "
                           f"the frame {w}x{h}")
        label = v.category or it.category
        if label not in _labels(li):
            raise AvsError(f"{where}: object {v.fid} has category {label!r}, which is not a label of project {pid}'s "
                           "config (fix the clip's category: avs-tools set-category)")
        result.append({"id": f"o{v.fid}", "from_name": cfg.MASK, "to_name": cfg.IMAGE, "type": "brushlabels",
                       "original_width": w, "original_height": h, "image_rotation": 0,
                       "value": {"format": "rle", "rle": encode(mask), "brushlabels": [label]}})
    scores = [min(max(float(v.score), 0.0), 1.0) for v in p.versions if v.score is not None]
    pred = {"model_version": p.model_version, "result": result}
    if scores:
        pred["score"] = min(scores)
    errors = li.validate_prediction(pred, return_errors=True)
    if errors:
        first = " ".join(str(errors[0]).split())
        first = first if len(first) <= 160 else first[:160] + "..."
        raise AvsError(f"{where}: the {p.model_version} prediction does not fit the labelling config of project "
                       f"{pid} ({first}); nothing of it was sent")
    return pred

