"""push's campaign options: --overlap (frames for two annotators) and --order (frames that need a human first).

--overlap F sets Label Studio's own overlap settings (`settings`): maximum_annotations 2 on a cohort of
overlap_cohort_percentage = F (whole percents) of the tasks, which the server picks and keeps as tasks are added;
qa then reports the annotators' agreement on the frames annotated twice.

--order: a frame's priority (0-100, higher first) is the mean of three needs, each 0..1:

- **low proposal score**: 1 - the score of the prediction annotators are meant to accept (its lowest object
  score; a frame without any proposed object counts 0.5: nothing to judge, something may be missed);
- **mask change**: 1 - the IoU between the frame's proposed masks (all objects together) and those of the
  clip's previous pushed second (for the clip's first one, its next one; 0 when the clip has one): a proposal
  that jumps from one second to the next is more likely wrong than one that stays;
- **near the silence threshold**: 1 - margin / 10 dB (0 at 10 dB or more), where margin is how far the
  second's level is from flipping the sample stage's sounding/silent decision (audio/activity.py: >= 10 dB
  over the clip's floor, or louder than -30 dBFS, and above -60 dBFS); 0 without an activity record. A second
  the analysis could have called either way is where "no sounding object" needs a person.

push writes it into the task data (`priority`, and `priority_why` with the three parts), so it is a sortable
column of the Data Manager, imports the new tasks in that order (highest first), sets the project's sampling to
sequential, and makes (once) the Data Manager tab ORDER_TAB, sorted by the priority as a number, highest first.

What the label stream serves, exactly (Label Studio 1.23, projects/functions/next_task.py): with sequential
sampling, the first task not yet done of the Data Manager tab the stream is started from, in that tab's order; a
tab not sorted (and the API's /next without a tab) goes by task id, which is the import order. So a first push
--order is served by priority from any tab; tasks imported by a later push come after every task already there in
the import order (a task's id cannot change; its `priority` field is updated in place), and only ORDER_TAB (or any
tab sorted by `priority` as a Number column) serves every task by priority.
"""

from __future__ import annotations

from avsbench_tools.audio.activity import ABS_LOUD_DB, ABS_SILENCE_DB, MIN_RELATIVE_DB
from avsbench_tools.studio.project import SEQUENTIAL

ORDER_TAB = "avs-tools: by priority"  # the Data Manager tab push --order makes: every task, highest priority first
NO_OBJECT_NEED = 0.5  # the score need of a frame without any proposed object
MARGIN_DB = 10.0  # a second this far (or more) from the silence decision needs nobody for its sound


def sound_margin(level_db: float, relative_db: float) -> float:
    """How many dB the second's level would have to move to flip the sounding/silent decision."""
    sounding = level_db > ABS_SILENCE_DB and (relative_db >= MIN_RELATIVE_DB or level_db >= ABS_LOUD_DB)
    if sounding:
        over = max(relative_db - MIN_RELATIVE_DB, level_db - ABS_LOUD_DB)  # the stronger of the two reasons
        return min(max(over, 0.0), level_db - ABS_SILENCE_DB)
    louder = min(MIN_RELATIVE_DB - relative_db, ABS_LOUD_DB - level_db)  # raising the level raises both alike
    return max(ABS_SILENCE_DB - level_db, louder)


def check_overlap(overlap: float | None) -> None:
    """A one-line UsageError unless --overlap is a fraction from 0 to 1 (or not given)."""
    import math

    from avsbench_tools.errors import UsageError

    if overlap is not None and not (math.isfinite(overlap) and 0.0 <= overlap <= 1.0):
        raise UsageError(f"--overlap {overlap}: expected a fraction of the frames from 0 to 1 (e.g. 0.1: one frame in "
                         "ten goes to two annotators)")


def by_priority(ws, items, todo: list, progress) -> dict[tuple[str, int], dict]:
    """Sort `todo` (the new tasks' items) by priority, highest first (then clip, second); their task data fields."""
    progress("pushing", 0, len(todo), "ranking frames by need of a human")
    extra = priorities(ws, items)
    todo.sort(key=lambda it: (-extra[(it.clip_id, it.frame.second)]["priority"], it.clip_id, it.frame.second))
    return extra


def priorities(ws, items) -> dict[tuple[str, int], dict]:
    """{(clip_id, second): {"priority": 0..100, "priority_why": text}} for push's plan items (studio.push_build.Item)."""
    import numpy as np

    from avsbench_tools.masks import iou
    from avsbench_tools.sample import activity_of

    unions: dict[tuple[str, int], np.ndarray | None] = {}
    scores: dict[tuple[str, int], float | None] = {}
    for it in items:
        accepted = next((p for p in reversed(it.preds) if not p.with_silent), None)  # the newest set's
        versions = accepted.versions if accepted is not None else []
        masks = [v.load(ws.root) for v in versions]
        key = (it.clip_id, it.frame.second)
        unions[key] = np.logical_or.reduce(masks) if masks else None
        known = [float(v.score) for v in versions if v.score is not None]
        scores[key] = min(known) if known else None
    by_clip: dict[str, list[int]] = {}
    for cid, s in sorted(unions):
        by_clip.setdefault(cid, []).append(s)
    out = {}
    activity = {cid: activity_of(ws, cid) for cid in by_clip}
    for cid, seconds in by_clip.items():
        for i, s in enumerate(seconds):
            other = seconds[i - 1] if i else (seconds[1] if len(seconds) > 1 else None)
            a, b = unions[(cid, s)], unions.get((cid, other)) if other is not None else None
            if other is None or (a is None and b is None):
                change = 0.0
            elif a is None or b is None or a.shape != b.shape:
                change = 1.0
            else:
                change = 1.0 - float(iou(a, b))
            score = scores[(cid, s)]
            low = NO_OBJECT_NEED if score is None else 1.0 - min(max(score, 0.0), 1.0)
            act = activity[cid]
            if act is not None and s < len(act.relative_db) and s < len(act.level_db):
                margin = sound_margin(float(act.level_db[s]), float(act.relative_db[s]))
                near = max(0.0, 1.0 - margin / MARGIN_DB)
                sound = f"{margin:.1f} dB from the silence decision"
            else:
                near, sound = 0.0, "no sound analysis"
            value = round(100.0 * (low + change + near) / 3.0, 1)
            out[(cid, s)] = {"priority": value,
                             "priority_why": (f"score need {low:.2f} (score {'-' if score is None else f'{score:.2f}'}),"
                                              f" mask change {change:.2f}, sound {near:.2f} ({sound})")}
    return out


def refresh(api, pid: int, ws_id: str, extra: dict[tuple[str, int], dict]) -> int:
    """Set the priority fields of this workspace's tasks already on the server where they differ (a task's place in
    the import order cannot change, its field can: the Data Manager sorts by it). Returns how many were changed."""
    changed = 0
    for tid, data in api.tasks_data(pid).items():
        if data.get("ws_id") != ws_id or "clip_id" not in data or "second" not in data:
            continue
        want = extra.get((str(data["clip_id"]), int(data["second"])))
        if want and any(data.get(k) != v for k, v in want.items()):
            api.update_task_data(tid, {**data, **want}, f"the priority of task {tid}")
            changed += 1
    return changed


def settings(api, proj, opts, res, extra: dict | None = None, ws_id: str = "") -> None:
    """--overlap: Label Studio's own overlap settings (maximum_annotations 2 on a cohort of overlap_cohort_percentage
    of the tasks, which the server picks and keeps as tasks are added); --order: sequential sampling, the priority
    fields of the tasks already there brought up to date, and the Data Manager tab ORDER_TAB (what the label stream
    serves: the module doc). Set after the imports: the server re-picks the cohort once, not per imported chunk."""
    fields: dict = {}
    if opts.overlap is not None:
        pct = 0 if opts.overlap <= 0 else max(1, round(100 * opts.overlap))
        want = (2, pct) if pct else (1, 100)
        if (proj.maximum_annotations, proj.overlap_cohort_percentage) != want:
            fields.update(maximum_annotations=want[0], overlap_cohort_percentage=want[1])
        res.overlap_percent = pct
        if abs(pct - 100 * opts.overlap) > 1e-9:
            res.notes.append(f"--overlap {opts.overlap:g}: Label Studio takes whole percents: {pct}% of the tasks go "
                             "to two annotators")
    if opts.order and proj.sampling != SEQUENTIAL:
        fields["sampling"] = SEQUENTIAL
    if opts.order and extra and res.tasks_reused:
        res.reprioritised = refresh(api, proj.id, ws_id, extra)
    if opts.order:
        res.order_tab = order_tab(api, proj.id)
    if fields:
        api.update_project(proj.id, **fields)


def order_tab(api, pid: int) -> int:
    """The id of the project's Data Manager tab ORDER_TAB (made if missing): sorted by the `priority` field as a
    number (a column shown as Number; otherwise Label Studio may sort it as text), highest first."""
    views = api.request("GET", "api/dm/views/", params={"project": pid}, what="the Data Manager tabs") or []
    for v in views:
        if (v.get("data") or {}).get("title") == ORDER_TAB and int(v.get("project") or pid) == pid:
            return int(v["id"])
    data = {"title": ORDER_TAB, "ordering": ["-tasks:data.priority"],
            "columnsDisplayType": {"tasks:data.priority": "Number"}}
    made = api.request("POST", "api/dm/views/", {"project": pid, "data": data}, what="making the tab " + ORDER_TAB)
    return int(made["id"])
