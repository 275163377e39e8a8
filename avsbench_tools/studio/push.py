"""push: the workspace's sampled frames as Label Studio tasks, its proposals as predictions.

One task per sampled frame (the frame, the clip's 16 kHz WAV with the frame's second named in the
header, the clip video for context); one prediction per task and proposal mask set (model_version
"<backend>:<settings hash>", one brush region per object, score = the lowest object confidence).
Every prediction is validated against the project's config before it is sent; tasks go in chunks, each
with its predictions, and each chunk's task ids and predictions are recorded as soon as the server answers
(prediction ids are learnt later, when needed: studio.push_sync). A push that died (server
down, Ctrl-C) is finished by the next one with no duplicate: tasks and predictions the server holds
but the catalog does not are found by their keys (workspace id, clip, second, model version) and
recorded, never sent again.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from avsbench_tools.catalog import MaskVersion
from avsbench_tools.catalog.studio import project_key
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.progress import Progress, no_progress
from avsbench_tools.studio.campaign import by_priority, check_overlap, settings
from avsbench_tools.studio.excerpt import Writer, prune
from avsbench_tools.studio.labelling import label_config
from avsbench_tools.studio.payload import CheckedInterface, encode
from avsbench_tools.studio.project import (
    Api,
    Project,
    StudioError,
    document_root,
    known_root,
    server_name,
)
from avsbench_tools.studio.push_build import (
    Item,
    audio_only,
    built,
    has_second,
    labels_of,
    prediction_json,
    refresh_audio,
    sound_text,
    split_silent,
    task_data,
    task_json,
)
from avsbench_tools.studio.push_sync import (
    find_project,
    interface,
    locate_project,
    make_storages,
    new_project,
    reconcile,
    reconcile_tasks,
    refresh_data,
    update_changed,
)

CHUNK = 100  # tasks per import request (at most; a request holds the tasks built when it is sent: push_build.built)


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
    audio_updated: int = 0  # tasks pushed before their audio started at their second: their data updated in place
    excerpts_removed: int = 0  # audio excerpts no pushed task uses any more, removed (studio.excerpt.prune)
    order_tab: int | None = None  # --order: the id of the Data Manager tab that serves every task by priority
    reprioritised: int = 0  # tasks already on the server whose priority fields were set or changed (--order)
    model_versions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def push(ws, conn, opts: PushOptions | None = None, progress: Progress | None = None) -> PushResult:
    """Push the workspace to the Label Studio server of `conn` (studio.connect). See the module doc."""
    opts = opts or PushOptions()
    opts.check()
    progress = progress or no_progress
    cat = ws.catalog
    sampled = cat.clip_ids_done("sample")
    ids = [ws.resolve_clip(c) for c in opts.clips] if opts.clips else sampled
    api, ws_id = Api(conn), cat.studio_ws_id()
    server = server_name(conn, ws_id)
    # the workspace's own server (`studio start`): its document root is the workspace's and it serves local files,
    # so an existing project's storages are listed while the catalog is planned and nothing else is asked about
    # serving (a missing storage is made, and the server validates it)
    own = bool(getattr(conn, "document_root", None)) and not opts.document_root
    # the project looked for, or made, while the catalog is planned (only when there is something to push: a
    # sampled clip has frames)
    asked = _Ask(ws, conn, api, ws_id, server, own) if set(ids) & set(sampled) else None
    audio = Writer(hold=True)  # the new tasks' audio excerpts: written once the build is ahead of the server
    guess = known_root(ws, conn, opts.document_root)  # the workspace's own server's, or --document-root
    ours = label_config(ws.recipe)
    early, later, pushing = None, _Pid(), False
    try:
        items = _plan(ws, ids)  # (the plan only reads)
        if not items:
            raise UsageError(f"nothing to push: no sampled frames in {ws.root}"
                             f"{' for those clips' if opts.clips else ''} (run avs-tools sample {ws.root} first)")
        asked = asked or _Ask(ws, conn, api, ws_id, server, own)  # (frames of a clip whose sample is not done)
        located = asked.located()
        if guess and not opts.order:  # the new tasks are built from now on, while the project is made or checked
            early = _early(ws, cat, server, ws_id, items, located[0], guess, ours, later, audio, opts.chunk_size)
        res = PushResult(url=api.url, clips=len({it.clip_id for it in items}))
        made = asked.made()
        pushing = True  # from here on the project is push's (recorded by find_project): an error keeps it
        return _push(ws, conn, api, opts, progress, items, res, server, audio, guess, ours, early, later,
                     (made, False) if made is not None else located, own)
    except BaseException:
        if asked is not None and not pushing:
            asked.drop()  # an error (or Ctrl-C) while planning: the empty project made meanwhile goes again
        raise
    finally:
        audio.close()
        if early is not None:
            early.close()


def _early(ws, cat, server: str, ws_id: str, items: list[Item], found: Project | None, root, ours: str, later: _Pid,
           audio: Writer, limit: int) -> _Early | None:
    """The new tasks' requests, built from the end of the plan on (`_push` keeps them when they are what it would
    build): for a project being made (`found` None), every frame; for the workspace's project with our config, the
    frames the catalog records no task for, when the server holds as many tasks as the catalog records (else push
    asks the server first: push_sync.reconcile). None when every label is not in our config (the error names it,
    once the project is known) or when nothing is new."""
    if found is None:
        todo, pid = items, later
    elif found.label_config.strip() == ours.strip():
        known = cat.studio_tasks(project_key(server, found.id))
        if found.task_number != len(known):
            return None
        todo, pid = [it for it in items if (it.clip_id, it.frame.second) not in known], found.id
    else:
        return None
    li = CheckedInterface(interface(ours))
    if not todo or not _labelled(todo, li):
        return None
    return _Early(todo, found.id if found is not None else None,
                  _bodies(ws, todo, root, ws_id, li, pid, audio, {}, limit))


@dataclass
class _Early:
    """New tasks' requests built while the project is made or checked: for these items, into project `pid` (None:
    the one being made)."""

    items: list[Item]
    pid: int | None
    bodies: built

    def fits(self, proj: Project, todo: list[Item], ours: str) -> bool:
        """Whether these are the requests `_push` would build for `todo` into `proj`."""
        return (self.pid == (None if proj.created else proj.id) and proj.label_config.strip() == ours.strip()
                and len(todo) == len(self.items) and all(a is b for a, b in zip(todo, self.items, strict=True)))

    def close(self) -> None:
        self.bodies.close()


def _push(ws, conn, api: Api, opts: PushOptions, progress: Progress, items: list[Item], res: PushResult, server: str,
          audio: Writer, guess, ours: str, early: _Early | None, later: _Pid, located, own: bool) -> PushResult:
    cat, ws_id = ws.catalog, ws.catalog.studio_ws_id()
    proj = find_project(ws, api, ws_id, server, res, (lambda pid: None) if own else
                        (lambda pid: conn.check_serving(ws.root, pid)), located)
    later.value = proj.id
    key = project_key(server, proj.id)
    unsure = cat.studio_importing(key)  # an earlier push's import may still land (checked after ours)
    li = CheckedInterface(interface(proj.label_config))
    if not has_second(li):  # a project made before the audio's second: a frame without proposal gets no region
        for it in items:
            it.preds = [p for p in it.preds if not p.audio_only or p.no_sound]
    tasks, preds = reconcile(ws, api, proj, key, ws_id, items, res)
    todo_new = [it for it in items if (it.clip_id, it.frame.second) not in tasks]
    extra = by_priority(ws, items, todo_new, progress) if opts.order else {}  # sorts todo_new
    res.ordered = len(todo_new) if extra else 0
    if early is not None and not early.fits(proj, todo_new, ours):
        early.close()
        early = None

    def build_from(root):  # the new tasks' request bodies, built in threads from now on (root: the document root)
        return _bodies(ws, todo_new, root, ws_id, li, proj.id, audio, extra, opts.chunk_size)

    todo_more = [(tasks[(it.clip_id, it.frame.second)], it, p) for it in items
                 if (it.clip_id, it.frame.second) in tasks for p in it.preds
                 if (tasks[(it.clip_id, it.frame.second)], p.model_version) not in preds]
    reused = [it for it in items if (it.clip_id, it.frame.second) in tasks]
    res.tasks_reused = len(reused)
    res.predictions_skipped = sum(len(it.preds) for it in items) - len(todo_more) - \
        sum(len(it.preds) for it in todo_new)
    total, done = len(todo_new) + len(todo_more), 0
    new_tasks = early.bodies if early is not None else build_from(guess) if guess else None  # (while the storages
    # are made and the root checked)
    recorder = ThreadPoolExecutor(1, thread_name_prefix="avs-push-record")  # the catalog's records of new tasks
    records: list = []
    refreshed, stop = None, threading.Event()
    try:
        if not proj.storages:
            make_storages(ws, api, proj, server)  # the server serves the workspace's files from them
        # the workspace's own server serves below the workspace (studio start sets it, and the project's storages
        # are there: made above when missing, which the server validates); any other server is asked
        docroot = guess if own else document_root(ws, conn, api, opts.document_root, items[0].frame.path)
        if new_tasks is None or docroot != guess:
            if new_tasks is not None:
                new_tasks.close()
            new_tasks = build_from(docroot)
        progress("pushing", done, total, "")
        if total:
            cat.set_studio_importing(key, True)  # cleared when this push ends well (else the next push checks)
        for chunk, body in new_tasks:
            sent = sum(len(it.preds) for it in chunk)
            new_ids = api.import_tasks(proj.id, body, len(chunk), predictions=sent)
            if refreshed is None and reused and new_tasks.is_ahead:  # the audio of the tasks already there, checked
                refreshed = recorder.submit(refresh_audio, ws, reused, stop)  # while the server imports (once the
                # build is ahead of it)
            if not proj.model_version and sent:  # the server gave the project the version of the import's last
                proj.model_version = next(p.model_version for it in reversed(chunk) for p in reversed(it.preds))
            made = list(zip(chunk, new_ids, strict=True))
            _recorded(records)  # a record that failed stops the push (its tasks are adopted by the next one)
            records.append(recorder.submit(_record, cat, key, made))  # while the next request is sent (a record
            tasks.update({(it.clip_id, it.frame.second): tid for it, tid in made})  # lost to a kill: push_sync adopts)
            res.tasks_created += len(chunk)
            res.predictions_sent += sent
            done += len(chunk)
            progress("pushing", done, total, chunk[-1].clip_id)
        _recorded(records, wait=True)
        audio.wait()

        def more(ch):
            return encode([{"task": tid, **prediction_json(ws, it, p, li, proj.id)} for tid, it, p in ch])

        for chunk, body in built(todo_more, more, opts.chunk_size):
            api.import_predictions(proj.id, body, len(chunk))
            cat.save_studio_predictions(key, [_unlearnt(p, tid) for tid, _, p in chunk])
            res.predictions_sent += len(chunk)
            done += len(chunk)
            progress("pushing", done, total, chunk[-1][1].clip_id)
        # excerpts made again where the clip was sampled again
        missing = refreshed.result() if refreshed is not None else refresh_audio(ws, reused)
        res.audio_updated = refresh_data(api, proj.id, tasks, missing, lambda it: task_data(ws, it, docroot, ws_id))
        res.predictions_updated = update_changed(ws, api, key, tasks, preds, items, li, proj.id,
                                                 proj.prediction_number + res.predictions_sent)
    except KeyboardInterrupt:
        stop.set()
        raise Interrupted(done, total - done, "tasks and predictions; the next push records what the server "
                                               "already holds") from None
    except StudioError as exc:
        stop.set()
        recorder.shutdown(wait=True)
        raise StudioError(f"{exc}; {_recorded(records, wait=True, count=True)} new tasks recorded: run avs-tools push "
                          f"{ws.root} again to finish (nothing is duplicated)") from None
    finally:
        stop.set()  # (an error: the audio check stops at its next task)
        recorder.shutdown(wait=True)  # every answered import recorded (milliseconds), also on Ctrl-C and errors
        audio.close()
        if new_tasks is not None:
            new_tasks.close()
    # an import of an interrupted push (one whose answer it never recorded) landed late (never in a project this push
    # made)
    if unsure and not proj.created and api.task_number(proj.id) != len(cat.studio_tasks(key)):
        reconcile_tasks(ws, api, proj.id, key, ws_id, res)
    if total or unsure:
        cat.set_studio_importing(key, False)
    settings(api, proj, opts, res, extra, ws_id)
    _finish(ws, proj, api, key, items, res)
    res.excerpts_removed = prune(ws).removed
    return res


def _bodies(ws, items: list[Item], root, ws_id: str, li, pid, audio, extra: dict, limit: int) -> built:
    """The import requests of new tasks (push_build.built), with their priority fields (--order: `extra`)."""
    def task(it: Item) -> dict:
        return {**(t := task_json(ws, it, root, ws_id, li, pid, audio)),
                "data": {**t["data"], **extra.get((it.clip_id, it.frame.second), {})}}
    return built(items, lambda ch: encode([task(it) for it in ch]), limit, ahead=audio.release)


def _labelled(items: list[Item], li) -> bool:
    """Every object's category is a label of the config of `li` (else push_build says which is not, naming the
    project: the tasks are built once it is made)."""
    labels = labels_of(li)
    return all((v.category or it.category) in labels for it in items for p in it.preds for v in p.versions)


class _Ask:
    """What push asks the server while it plans, in a daemon thread (a request that hangs never holds up the exit
    after Ctrl-C): the workspace's project (`located()`: locate_project; on the workspace's own server with its
    storages listed), and when it has none, a new one with its storages (`made()`: push_sync.new_project; None when
    one was found). A request the server does not answer as
    Label Studio is explained by `Connection.check` (down, not Label Studio, the key refused: one line), which push
    asks only then. `drop()`: push failed or was interrupted while planning, the project made for it goes again."""

    def __init__(self, ws, conn, api: Api, ws_id: str, server: str, own: bool = False):
        import threading
        from concurrent.futures import Future

        self._api = api
        self._located: Future = Future()
        self._made: Future = Future()
        threading.Thread(target=self._run, args=(ws, conn, api, ws_id, server, own), daemon=True,
                         name="avs-push-ask").start()

    def _run(self, ws, conn, api: Api, ws_id: str, server: str, own: bool) -> None:
        try:
            try:
                found = locate_project(ws, api, ws_id, server)
                if found[0] is not None and own:  # (the workspace's own server: see push)
                    found[0].storage_paths = api.storage_paths(found[0].id)
            except Exception:  # noqa: BLE001 - an error answer, or one that is not Label Studio's JSON
                conn.check()  # the reason in one line, when it is one of those
                raise
        except BaseException as exc:  # noqa: BLE001 - handed to located() and made()
            self._located.set_exception(exc)
            self._made.set_exception(exc)
            return
        self._located.set_result(found)
        try:
            self._made.set_result(new_project(ws, api, ws_id, server) if found[0] is None else None)
        except BaseException as exc:  # noqa: BLE001
            self._made.set_exception(exc)

    def located(self) -> tuple[Project | None, bool]:
        return self._located.result()

    def made(self) -> Project | None:
        return self._made.result()

    def drop(self) -> None:
        """Delete the project made meanwhile, if it is made by now (never waits: a project still being made is left,
        and the next push finds it by the workspace's marker and uses it)."""
        if not self._made.done() or self._made.exception() is not None:
            return
        proj = self._made.result()
        if proj is not None:
            with contextlib.suppress(Exception):  # the error push raises says what matters
                self._api.request("DELETE", f"api/projects/{proj.id}/", what=f"deleting project {proj.id}",
                                  timeout=10)


class _Pid:
    """A project id known later: the tasks of a project being made are built while it is made (its id in messages)."""

    value = 0

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def _record(cat, key: str, made: list[tuple[Item, int]]) -> int:
    """The catalog's rows of newly imported tasks and their predictions; how many tasks."""
    cat.save_studio_tasks(key, [(it.clip_id, it.frame.second, tid) for it, tid in made])
    cat.save_studio_predictions(key, [_unlearnt(p, tid) for it, tid in made for p in it.preds])
    return len(made)


def _recorded(records: list, wait: bool = False, count: bool = False) -> int:
    """Raise the error of a record (`_record` future) that failed (every one, when `wait`; else those done), or with
    `count` (after another error) return how many tasks the records that succeeded wrote."""
    done = 0
    for f in records:
        if not (wait or f.done()):
            continue
        exc = f.exception()
        if exc is not None and not count:
            raise exc
        done += 0 if exc is not None else f.result()
    return done


def _unlearnt(p, tid: int) -> tuple:
    """The catalog row of a prediction just imported: its id is not learnt yet (0; studio.push_sync)."""
    t, mv, vids, digest = p.row(tid)
    return (t, mv, 0, vids, digest)


# -- the plan: what the catalog says should be on the server ------------------------------------------
def _plan(ws, clip_ids: list[str]) -> list[Item]:
    from avsbench_tools.sample import activity_from

    cat = ws.catalog
    items = []
    sources = {s.source_id: s for s in cat.sources()}
    for cid in clip_ids:
        frames = cat.frames(cid)
        clip = cat.clip(cid)
        if not frames or clip is None:
            continue
        versions = cat.mask_versions(cid)  # every kind, read once: the rule of what a frame shows reads them too
        frames = _needed(ws, clip, frames, sources.get(clip.source_id), versions)
        audio = cat.audio(cid)
        sets: dict[str, list[MaskVersion]] = {}
        for v in versions:
            if v.kind == "proposal":
                sets.setdefault(v.settings_hash or "", []).append(v)
        ordered = sorted(sets.items(), key=lambda kv: min(v.version_id for v in kv[1]))  # oldest set first
        covered = {h: set(cat.mask_set_seconds(cid, "proposal", h) or []) | {v.second for v in vs}
                   for h, vs in ordered}
        activity = activity_from(audio)
        for f in frames:
            preds = [p for h, vs in ordered if f.second in covered[h]
                     for p in split_silent(f"{vs[0].backend}:{h}", f.second,
                                           sorted((v for v in vs if v.second == f.second), key=lambda v: v.fid),
                                           clip.category, activity)]
            items.append(Item(cid, f, clip.seconds, audio.wav_path if audio else None, clip.path, clip.category,
                               preds or [audio_only(f.second, activity)], fps=clip.fps, n_frames=clip.n_frames,
                               sound=sound_text(activity, f.second)))
    return items


def _needed(ws, clip, frames: list, src, versions: list[MaskVersion] | None = None) -> list:
    """The frames the export will supervise for the clip's current form (completeness.needed_seconds: S4/MS3 by the
    recipe's split rule, AVSS v1s train the first, v1m/v2 all; a clip without a split yet, all). The form follows
    the masks the clip shows (reviews, else its newest proposals); while an unreviewed second's classes come from a
    backend that does not name them (motion), the single/multi-source form is not decided: every frame (export's
    rule, completeness.clip_form)."""
    from avsbench_tools.completeness import needed_seconds
    from avsbench_tools.mask_store import reviewed_seconds, shown_masks

    masks = shown_masks(ws, clip.clip_id, include_unreviewed=True, versions=versions)
    need = needed_seconds(ws.recipe, clip, len(frames), masks, src, reviewed_seconds(ws, clip.clip_id, versions))
    return [f for f in frames if f.second in need] or frames


def _shown(items: list[Item]) -> tuple[list[str], str]:
    """(the model versions of the clips' newest proposals, the one the project shows: that one when there is one,
    else "" (every prediction))."""
    newest: dict[str, str] = {}
    for it in items:
        offered = [p for p in it.preds if not p.with_silent and not p.audio_only]
        if offered:
            newest[it.clip_id] = offered[-1].model_version
    versions = sorted(set(newest.values()))
    return versions, versions[0] if len(versions) == 1 else ""


def _finish(ws, proj: Project, api: Api, key: str, items: list[Item], res: PushResult) -> None:
    cat = ws.catalog
    tasks, preds = cat.studio_tasks(key), cat.studio_predictions(key)
    complete: dict[str, bool] = {}
    for it in items:
        tid = tasks.get((it.clip_id, it.frame.second))
        ok = tid is not None and all((tid, p.model_version) in preds for p in it.preds)
        complete[it.clip_id] = complete.get(it.clip_id, True) and ok
    versions, show = _shown(items)
    res.model_versions = versions
    if len(versions) > 1:
        res.notes.append(f"the clips' newest proposals come from {len(versions)} settings ({', '.join(versions)}): "
                         "the editor shows every prediction, and tasks are served in random order, not lowest "
                         "score first")
    if (proj.model_version or "") != show:  # as the server holds it (an import gives a project without one its own)
        api.update_project(proj.id, model_version=show)
    done = [c for c, ok in complete.items() if ok]
    cat.finish_many("push", done, {"url": api.url, "project": proj.id, "model_versions": versions})
