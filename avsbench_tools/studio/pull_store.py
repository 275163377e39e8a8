"""The storing half of pull: batches of Label Studio tasks -> stored reviews, retractions, skips (`Puller`).

One batch is one transaction (`catalog.save_pull`): the annotations pulled, the retraction of those the
server no longer holds, the touched clips' review sets rebuilt whole from their live annotations. A mask
file of an earlier pull is deleted only when no row of the catalog names it any more (a retracted
review keeps its files: it is history). An annotation that cannot be used (`BadAnnotation`) is listed,
recorded in the failure ledger (stage "pull", so `status` shows it), and not stored: its stamp is not
recorded, so the next pull tries it again (pull fetches the tasks of open pull failures by id).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

import numpy as np

from avsbench_tools.catalog.reviews import SILENT, UNUSABLE, StudioReview
from avsbench_tools.completeness import needed_seconds
from avsbench_tools.studio.review_set import (
    HAND_DRAWN_FIDS,
    SETTINGS,
    BadAnnotation,
    FidBook,
    LabelRules,
    TaskInfo,
    clip_reviews,
    ls_time,
    parse_annotation,
)

STAGE = "pull"


@dataclass
class Skipped:
    """An annotation pull could not use (listed, in the ledger, tried again by the next pull)."""

    task_id: int
    clip_id: str
    second: int
    annotation_id: int
    reason: str

    def line(self) -> str:
        return f"task {self.task_id} (clip {self.clip_id}, second {self.second}), annotation {self.annotation_id}: " \
               f"{self.reason}"


@dataclass
class PullResult:
    """What one pull did. `new`: annotations stored for the first time; `changed`: stored before, changed since."""

    url: str
    project_key: str
    tasks: int = 0  # tasks listed (updated since the cursor, and those of earlier skips)
    new: int = 0  # submitted annotations stored for the first time
    changed: int = 0  # submitted annotations stored before and changed since (a relabel, an edit): each counted once
    cancelled: int = 0  # cancelled (skipped) annotations counted, no masks stored
    unchanged: int = 0  # annotations already pulled at their current updated_at
    regions: int = 0  # brush regions stored as masks
    silent: int = 0  # submitted annotations stored by this pull (new or changed) marking their frame "no sounding object"
    unusable: int = 0  # ... marking their frame "unusable frame"
    dropped_regions: int = 0  # regions on frames marked "no sounding object" (not stored)
    foreign: int = 0  # tasks that are not this workspace's frames (other workspace, unknown clip)
    clips: int = 0  # clips whose review set was rebuilt
    clips_done: int = 0  # ... of which every frame the exported form supervises is reviewed
    null_expressions: int = 0  # clips whose null expressions were set
    cursor: str | None = None
    retracted: list[str] = field(default_factory=list)  # why each review was retracted (gone from the server)
    skipped: list[Skipped] = field(default_factory=list)  # annotations that could not be used
    labels: list[str] = field(default_factory=list)  # label problems of the annotations stored (old/outside/contradicting)
    project_gone: int | None = None  # the project id, when the project was deleted on the server
    reviewed_clips: int = 0  # clips of the workspace fully reviewed after the pull (completeness rule)
    partial_clips: int = 0
    excerpts_removed: int = 0  # audio excerpts (WS/audio/seconds) no pushed task uses any more, removed


class Puller:
    """Turns batches of tasks into stored reviews; keeps the users, fid books and written files."""

    def __init__(self, ws, key: str, res: PullResult, list_users):
        self.ws, self.key, self.res, self.list_users = ws, key, res, list_users
        cat = ws.catalog
        self.ws_id = cat.studio_ws_id()
        self.tasks = {tid: cs for cs, tid in cat.studio_tasks(key).items()}
        self.stamps = cat.review_stamps(key)
        self.live = cat.live_annotations(key)  # {task: {annotation: clip}} not retracted
        self.users: dict[int, str] | None = None
        self.frames: dict[str, dict[int, tuple[int, int]]] = {}
        self.rules: dict[str, LabelRules] = {}
        self.written: list = []
        self.sources: dict | None = None  # source_id -> Source (an AVSS world's subset), read once
        self.open = {f.item: f for f in cat.failures(STAGE) if _payload(f).get("project") == key}

    # -- what the ledger says to try again ----------------------------------------------------------
    def retry_task_ids(self) -> list[int]:
        """Task ids of the annotations skipped by earlier pulls of this project (tried again now)."""
        return sorted({int(_payload(f)["task"]) for f in self.open.values() if "task" in _payload(f)})

    def resolve_gone(self, task_ids: set[int]) -> None:
        """Close the ledger rows of skipped annotations whose task is gone from the server."""
        for item, f in list(self.open.items()):
            if int(_payload(f).get("task", -1)) in task_ids:
                self.ws.catalog.resolve_failure(STAGE, item)
                del self.open[item]

    # -- helpers ------------------------------------------------------------------------------------
    def _users(self) -> dict[int, str]:
        if self.users is None:
            self.users = self.list_users()
        return self.users

    def _where(self, task: dict) -> tuple[str, int] | None:
        """(clip, second) of a task of this workspace, else None."""
        data = task.get("data") or {}
        known = self.tasks.get(int(task["id"]))
        if known is not None:
            return known
        if data.get("ws_id") != self.ws_id:
            return None
        try:
            clip_id, second = str(data["clip_id"]), int(data["second"])
        except (KeyError, TypeError, ValueError):
            return None
        return (clip_id, second) if self.ws.catalog.clip(clip_id) is not None else None

    def _shape(self, clip_id: str, second: int) -> tuple[int, int] | None:
        if clip_id not in self.frames:
            self.frames[clip_id] = {}
            for f in self.ws.catalog.frames(clip_id):
                h, w = f.height, f.width
                if not (h and w):
                    from PIL import Image

                    with Image.open(self.ws.path(f.path)) as im:
                        w, h = im.size
                self.frames[clip_id][f.second] = (int(h), int(w))
        return self.frames[clip_id].get(second)

    def _rules(self, clip_id: str) -> LabelRules:
        if clip_id not in self.rules:
            self.rules[clip_id] = LabelRules.of(self.ws, clip_id)
        return self.rules[clip_id]

    def _write_mask(self, clip_id: str):
        from avsbench_tools.mask_store import write_mask

        def write(name: str, mask: np.ndarray) -> str:
            self.written.append(self.ws.path("masks", clip_id, "studio", f"{name}.png"))
            return self.ws.rel(write_mask(self.ws, clip_id, "studio", name, mask))
        return write

    # -- retractions --------------------------------------------------------------------------------
    def retract_tasks(self, task_ids: set[int], why: str) -> None:
        """Retract the live reviews of these tasks (deleted on the server; `why` names the cause), one batch."""
        gone = [(self.key, a, why) for t in sorted(task_ids) for a in self.live.get(t, {})]
        if gone:
            self.store([], None, gone)

    def retract_all(self, why: str) -> None:
        """Retract every live review of the project (deleted on the server), one batch."""
        self.retract_tasks(set(self.live), why)
        self.resolve_gone(set(self.tasks) | set(self.live))

    # -- one batch ----------------------------------------------------------------------------------
    def store(self, tasks: list[dict], cursor: str | None, retract: list[tuple[str, int, str]] | None = None) -> int:
        """Parse and store one batch of tasks (one transaction), retracting `retract` ((key, annotation, why))
        and the annotations of these tasks that the server no longer lists; returns the number of tasks."""
        cat = self.ws.catalog
        reviews: list[StudioReview] = []
        retract = list(retract or [])
        books: dict[str, FidBook] = {}
        done_items: list[str] = []
        learnt: list[tuple[int, str, int]] = []  # the ids of pushed predictions (push records them as not learnt)
        for task in tasks:
            where = self._where(task)
            shape = where and self._shape(*where)
            if where is None or shape is None:
                self.res.foreign += 1
                continue
            clip_id, second = where
            tid = int(task["id"])
            models = {int(p["id"]): p.get("model_version") for p in task.get("predictions") or [] if isinstance(p, dict)}
            learnt += [(tid, mv, p) for p, mv in models.items() if mv is not None]
            info = TaskInfo(self.key, tid, clip_id, second, shape, models)
            anns = [a for a in task.get("annotations") or [] if isinstance(a, dict) and "id" in a]
            listed = {int(a["id"]) for a in anns}
            retract += [(self.key, a, f"annotation {a} was deleted on the server") for a in self.live.get(tid, {})
                        if a not in listed]
            for ann in anns:
                aid = int(ann["id"])
                item = f"{clip_id} second {second} annotation {aid}"
                stamp = ls_time(ann.get("updated_at"))
                if self.stamps.get(aid) == stamp and item not in self.open:
                    self.res.unchanged += 1
                    continue
                book = books.get(clip_id) or books.setdefault(clip_id, FidBook(
                    clip_id, cat.studio_object_keys(clip_id), max(cat.max_fid(clip_id) + 1, HAND_DRAWN_FIDS)))
                before = len(self.written)
                try:
                    review, dropped = parse_annotation(ann, info, self._users(), book, self._write_mask(clip_id),
                                                       self._rules(clip_id))
                except BadAnnotation as exc:
                    named = cat.paths_in_use(self.ws.rel(p) for p in self.written[before:])
                    for p in self.written[before:]:
                        if self.ws.rel(p) not in named:
                            with contextlib.suppress(FileNotFoundError):
                                p.unlink()
                    del self.written[before:]
                    skip = Skipped(tid, clip_id, second, aid, str(exc))
                    self.res.skipped.append(skip)
                    cat.record_failure(STAGE, item, skip.reason, detail=skip.line(),
                                       payload={"project": self.key, "task": tid, "annotation": aid})
                    continue
                if item in self.open:
                    done_items.append(item)
                reviews.append(review)
                self._count(review, dropped)
        if learnt:
            cat.learn_prediction_ids(self.key, learnt)
        return self._save(reviews, retract, books, cursor, done_items, len(tasks))

    def _save(self, reviews, retract, books, cursor, done_items, n_tasks) -> int:
        cat = self.ws.catalog
        retract_ids = {(k, int(a)) for k, a, _ in retract}
        clip_of = {a: c for t in self.live.values() for a, c in t.items()}
        touched = sorted({r.clip_id for r in reviews} | {clip_of[a] for _, a in retract_ids if a in clip_of})
        clips, superseded = {}, set()
        for clip_id in touched:
            pulled = {(r.project_key, r.annotation_id): r for r in cat.studio_reviews([clip_id])
                      if (r.project_key, r.annotation_id) not in retract_ids}
            for r in reviews:
                if r.clip_id == clip_id:
                    old = pulled.get((r.project_key, r.annotation_id))
                    if old is not None and old.submitted and not r.submitted:
                        self.res.retracted.append(f"annotation {r.annotation_id} was cancelled on the server")
                    superseded |= {g["path"] for g in (old or r).regions}
                    pulled[(r.project_key, r.annotation_id)] = r
            c = clip_reviews(clip_id, list(pulled.values()), set(), self._rules(clip_id))
            clip = cat.clip(clip_id)
            frames = cat.frames(clip_id)
            if self.sources is None:
                self.sources = {s.source_id: s for s in cat.sources()}
            src = self.sources.get(clip.source_id) if clip is not None else None
            needed = needed_seconds(self.ws.recipe, clip, len(frames), c.versions, src) & {f.second for f in frames}
            c.done = bool(c.seconds) and needed <= set(c.seconds)
            clips[clip_id] = c
        keys = [k for b in books.values() for k in b.new]
        settings = {**SETTINGS, "project": self.key}
        cat.save_pull(self.key, reviews, keys, clips, cursor, settings, retract)
        for item in done_items:
            cat.resolve_failure(STAGE, item)
            self.open.pop(item, None)
        for r in reviews:
            self.stamps[r.annotation_id] = r.ls_updated_at
            t = self.live.setdefault(r.task_id, {})
            t[r.annotation_id] = r.clip_id
        for k, a, why in retract:
            if k == self.key:
                for t in self.live.values():
                    t.pop(int(a), None)
            self.res.retracted.append(why)
        self.written = []
        kept = {g["path"] for r in reviews for g in r.regions}
        stale = superseded - kept
        for rel in stale - cat.paths_in_use(stale):  # masks of an earlier pull no row names any more (ours)
            with contextlib.suppress(FileNotFoundError):
                self.ws.path(rel).unlink()
        self.res.clips += len(clips)
        self.res.clips_done += sum(c.done for c in clips.values())
        return n_tasks

    def _count(self, r: StudioReview, dropped: int) -> None:
        if not r.submitted:
            self.res.cancelled += 1
            return
        if r.annotation_id in self.stamps:
            self.res.changed += 1
        else:
            self.res.new += 1
        self.res.regions += len(r.regions)
        self.res.silent += SILENT in r.flags
        self.res.unusable += UNUSABLE in r.flags
        self.res.dropped_regions += dropped
        self.res.labels += [f"clip {r.clip_id} second {r.second} (annotation {r.annotation_id}): {g['problem']}"
                            for g in r.regions if g.get("problem")]

    def discard_unsaved(self) -> None:
        """Remove the mask files of a batch that was not committed (only those no row of the catalog names)."""
        named = self.ws.catalog.paths_in_use(self.ws.rel(p) for p in self.written) if self.written else set()
        for p in self.written:
            if self.ws.rel(p) not in named:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        self.written = []


def _payload(f) -> dict:
    try:
        d = json.loads(f.payload) if f.payload else {}
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}
