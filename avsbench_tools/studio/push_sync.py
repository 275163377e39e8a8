"""push's bookkeeping against the server: the workspace's project found or made, and the catalog's record of tasks
and predictions brought in line with what the server holds.

The catalog records a task when its import is answered (the answer names the task ids) and its predictions at the
same time, with the prediction id 0 ("not learnt yet": an import does not return prediction ids, and listing them
costs the server as much as a third of the import). The ids are learnt when something needs them: `update_changed`
before it updates a prediction in place, pull from the tasks it lists, `reconcile` when the server's counts differ
from the catalog's (an interrupted push: what the server holds but the catalog does not is found by its keys and
recorded, duplicates deleted, never sent again).
"""

from __future__ import annotations

import os
from pathlib import Path

from avsbench_tools.catalog.studio import project_key
from avsbench_tools.errors import UsageError
from avsbench_tools.studio import labelling as cfg
from avsbench_tools.studio.project import Api, Project
from avsbench_tools.studio.push_build import Item, prediction_json


# -- the project ----------------------------------------------------------------------------------------
def locate_project(ws, api: Api, ws_id: str, server: str) -> tuple[Project | None, bool]:
    """(the workspace's project on the server, or None; whether it was found by the workspace's marker rather than
    the id the catalog records). Only reads (push asks it while it plans)."""
    pid = ws.catalog.studio_project(server)
    proj = api.project(pid) if pid is not None else None
    if proj is not None and not proj.is_ours(ws_id):
        proj = None  # the server was reset and the id now names another workspace's project
    if proj is not None:
        return proj, False
    proj = api.find_project(ws_id)
    return proj, proj is not None


def new_project(ws, api: Api, ws_id: str, server: str) -> Project:
    """A new project for the workspace (our config and instructions, no model version: see `Api.create_project`) with
    its local-files storages (`make_storages`: a server that cannot serve the workspace refuses them, and the project
    is deleted again). Push makes it while it plans (no catalog write here: `find_project` records it)."""
    recipe = ws.recipe
    title = f"{Path(os.path.abspath(ws.root)).name} ({recipe.name})"
    proj = api.create_project(title, ws_id, cfg.label_config(recipe), cfg.instructions(recipe))
    make_storages(ws, api, proj, server)
    proj.storages = True
    return proj


def find_project(ws, api: Api, ws_id: str, server: str, res, check_serving,
                 located: tuple[Project | None, bool] | None = None) -> Project:
    """The workspace's project (`res`: the push's PushResult), found (`located`: what `locate_project` answered, when
    it was asked already, or a project `new_project` made meanwhile) or made (`new_project`). `check_serving(pid)`
    (connect's: can the server serve the workspace's media?) runs before an existing project is changed. A new
    project is checked by making its local-files storages (which the server validates the same way), and deleted
    again when they are refused: a refusal leaves nothing behind."""
    cat, recipe = ws.catalog, ws.recipe
    proj, by_marker = located or locate_project(ws, api, ws_id, server)
    if by_marker:
        res.notes += _same_server(ws, api, proj.id, ws_id, project_key(server, proj.id))
    if proj is None:
        proj = new_project(ws, api, ws_id, server)
    elif not proj.created:
        check_serving(proj.id)
        instructions = cfg.instructions(recipe)
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
    if proj.id != cat.studio_project(server):
        cat.set_studio_project(server, proj.id)
    res.project_id, res.project_created = proj.id, proj.created
    return proj


def make_storages(ws, api: Api, proj: Project, server: str) -> None:
    """The project's local-files storages (what lets the server serve the workspace's files). A new project whose
    storages the server refuses (it cannot serve the workspace) is deleted again, and forgotten."""
    try:
        api.ensure_storages(proj.id, ws.root, new=proj.created, have=proj.storage_paths)
    except BaseException:
        if proj.created:
            api.request("DELETE", f"api/projects/{proj.id}/", what=f"deleting project {proj.id} (its storages were "
                        "refused)")
            ws.catalog.set_studio_project(server, None)
        raise


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


def interface(config: str):
    from label_studio_sdk.label_interface import LabelInterface

    return LabelInterface(config)


def reconcile(ws, api: Api, proj: Project, key: str, ws_id: str, items: list[Item], res):
    """The catalog's record of tasks and predictions, completed with what the server holds that an
    interrupted push did not record (found by our keys), cleared of tasks deleted on the server, and
    with duplicates of our tasks and predictions (a late import of an interrupted push) deleted."""
    cat = ws.catalog
    tasks = cat.studio_tasks(key)
    if proj.task_number != len(tasks):
        tasks = reconcile_tasks(ws, api, proj.id, key, ws_id, res)
    preds = cat.studio_predictions(key)
    if proj.prediction_number != len(preds):
        want = [p.row(tasks[(it.clip_id, it.frame.second)])
                for it in items if (it.clip_id, it.frame.second) in tasks for p in it.preds]
        res.predictions_adopted = _record_predictions(ws, api, proj.id, key, want, in_project=proj.prediction_number)
        preds = cat.studio_predictions(key)
    return tasks, preds


def reconcile_tasks(ws, api: Api, pid: int, key: str, ws_id: str, res) -> dict[tuple[str, int], int]:
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


def update_changed(ws, api: Api, key: str, tasks: dict, preds: dict, items: list[Item], li, pid: int,
                   in_project: int) -> int:
    """Update on the server the predictions whose content changed since they were sent (their digest:
    objects and labels, e.g. after set-category), so annotators see the new labels. A prediction pushed
    before digests existed counts as changed when its clip's category was changed since. The ids of the
    predictions to update are learnt first where the catalog has none yet (`in_project`: about how many
    predictions the project holds)."""
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
    unknown = {tid for tid, _, p in update if not preds[(tid, p.model_version)]}
    if unknown:
        preds = learn_ids(ws, api, pid, key, unknown, in_project)
    for tid, it, p in update:
        pred_id = preds[(tid, p.model_version)]
        if not pred_id:
            from avsbench_tools.studio.project import StudioError

            raise StudioError(f"Label Studio at {api.url} does not list the {p.model_version} prediction of task {tid} "
                              f"({it.clip_id} second {it.frame.second}), which push sent")
        api.update_prediction(pid, tid, pred_id, prediction_json(ws, it, p, li, pid))
        cat.set_prediction_digests(key, [(tid, p.model_version, p.digest)])
    if adopt:
        cat.set_prediction_digests(key, adopt)
    return len(update)


def learn_ids(ws, api: Api, pid: int, key: str, task_ids: set[int], in_project: int) -> dict[tuple[int, str], int]:
    """Ask the server for the ids of the predictions of these tasks that the catalog records as not learnt yet (0),
    and record them (the oldest of a task and model version: the one its import made). Returns the catalog's
    {(task id, model version): prediction id} after."""
    known = ws.catalog.studio_predictions(key)
    on_server = api.prediction_ids(pid, set(task_ids), in_project)
    ws.catalog.learn_prediction_ids(key, [(t, mv, ids[0]) for (t, mv), ids in on_server.items()
                                          if ids and known.get((t, mv)) == 0])
    return ws.catalog.studio_predictions(key)


def _record_predictions(ws, api: Api, pid: int, key: str, rows: list[tuple[int, str, list[int], str]],
                        in_project: int) -> int:
    """Record the predictions in `rows` (task id, model version, version ids, digest) that the server holds and the
    catalog does not (made by an interrupted push: the oldest is kept), learn the ids of those it records without,
    and delete any duplicate. Returns how many were recorded."""
    known = ws.catalog.studio_predictions(key)
    on_server = api.prediction_ids(pid, {r[0] for r in rows}, in_project)
    found, extra = [], []
    for tid, mv, vids, digest in rows:
        ids = on_server.get((tid, mv), [])
        if not ids:
            continue
        keep = known.get((tid, mv)) if known.get((tid, mv)) in ids else ids[0]
        if known.get((tid, mv)) != keep:
            found.append((tid, mv, keep, vids, digest))
        extra += [i for i in ids if i != keep]
    adopted = [f for f in found if (f[0], f[1]) not in known]
    learnt = [(t, mv, i) for t, mv, i, _, _ in found if known.get((t, mv)) == 0]
    ws.catalog.save_studio_predictions(key, [f for f in found if (f[0], f[1]) not in known or known[(f[0], f[1])]])
    ws.catalog.learn_prediction_ids(key, learnt)
    if extra:
        api.delete("predictions", extra)
    return len(adopted)


def refresh_data(api: Api, pid: int, tasks: dict, missing: list[Item], data_of) -> int:
    """The tasks among `missing` (items already on the server whose audio excerpt is missing: pushed before tasks had
    their audio from their second, or the excerpt was removed since) get their data made again by `data_of(item)`
    (which writes the excerpt) and updated in place where it differs; what else their data holds (e.g. the priority
    fields) and their annotations and predictions stay. Returns how many tasks were updated."""
    if not missing:
        return 0
    on_server = api.tasks_data(pid)
    updated = 0
    for it in missing:
        tid = tasks.get((it.clip_id, it.frame.second))
        old = on_server.get(tid) if tid is not None else None
        if old is None:
            continue
        new = {**old, **data_of(it)}
        if new != old:
            api.update_task_data(tid, new, f"the audio of task {tid} ({it.clip_id} second {it.frame.second})")
            updated += 1
    return updated
