"""Queueing: every requested source becomes a catalog row, after all of them are validated.

A refusal (an unknown category, a CSV split the recipe lacks, a --world file that is not one of its
videos, a source that would get no category) raises a UsageError before anything is written. Files
under --local that are not videos are recorded at once as permanent rejections.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import unquote, urlparse

from avsbench_tools.catalog import Source
from avsbench_tools.collect.ledger import classify_error, record, source_label
from avsbench_tools.collect.options import CollectOptions, CollectResult
from avsbench_tools.collect.sources import (
    YOUTUBE_JS_HELP,
    WorldVideo,
    local_ids,
    read_csv_rows,
    safe_id,
    scan_local,
    search_keyword,
    world_index,
    youtube_js_runtime_missing,
    youtube_url,
)
from avsbench_tools.errors import AvsError, UsageError
from avsbench_tools.progress import Progress
from avsbench_tools.workspace import Workspace


def _categories_line(recipe) -> str:
    return ", ".join(recipe.categories)


def _need_category(recipe, what: str) -> UsageError:
    return UsageError(f"{what}: recipe {recipe.name} has categories and these clips would get none: pass "
                      f"--category C (one of: {_categories_line(recipe)})"
                      + (" or --category-from-folder" if what.startswith("--local") else ""))


def _folder_category(recipe, root: Path, p: Path) -> str | None:
    parts = p.relative_to(root).parts
    if len(parts) < 2:
        return None
    name = parts[0]
    return name if name in recipe.categories else recipe.match_category(name)


class _Enqueue:
    """Adds requested sources to the catalog after validating all of them (a refusal adds nothing)."""

    def __init__(self, ws: Workspace, opts: CollectOptions, res: CollectResult):
        self.ws, self.opts, self.res = ws, opts, res
        self.cat = ws.catalog
        self.not_applied = 0  # existing, already collected sources whose category/ids this run would change
        self.new = 0
        self._known: dict[str, str] | None = None  # stored path -> source id, of the local sources queued before

    def local_ids(self, p: Path, stored: str) -> tuple[str, str]:
        """(source id, video id) of a local file. A file queued before keeps its ids, found by its stored
        path: relative inside the workspace, so a --local folder inside a workspace that was moved is
        still the same sources. A new file gets them from its absolute path (`sources.local_ids`)."""
        if self._known is None:
            self._known = {s.path: s.source_id for s in self.cat.sources() if s.kind == "local" and s.path}
        sid = self._known.get(stored)
        return (sid, sid.removeprefix("local-")) if sid else local_ids(p)

    def add(self, src: Source) -> bool:
        """Insert a new source, or bring a not-yet-collected one up to date with this run's category
        and world ids; an already collected one keeps its own (counted for a note)."""
        if self.cat.add_source_if_new(src):
            self.new += 1
            return True
        old = self.cat.source(src.source_id)
        want = {k: getattr(src, k) for k in ("category", "video_id", "split_hint") if getattr(src, k) is not None}
        diff = {k: v for k, v in want.items() if getattr(old, k) != v}
        if not diff:
            return False
        if old.status == "done" or self.cat.clip_ids_for_source(old.source_id):
            self.not_applied += 1
        else:
            self.cat.update_source(src.source_id, **diff)
        return False

    def reject_on_sight(self, src: Source, reason: str) -> None:
        """A file that is not usable as a video: a source row plus a permanent ledger row, once."""
        src.status, src.reason = "rejected", reason
        if self.cat.add_source_if_new(src):
            record(self.cat, src.source_id, reason, src.path, {"url": src.url, "source": source_label(src)}, True)
            self.res.rejected += 1
            self.res.sources += 1
            self.res.failures.append((source_label(src), reason, True))


def enqueue_sources(ws: Workspace, opts: CollectOptions, progress: Progress | None = None,
                    res: CollectResult | None = None) -> int:
    """Add every requested source to the catalog. Returns how many were new."""
    res = res if res is not None else CollectResult()
    recipe = ws.recipe
    category = opts.category
    if category and category not in recipe.categories:
        raise UsageError(f"--category {category!r} is not in recipe {recipe.name} (one of: {_categories_line(recipe)})")
    if opts.world is not None and (category or opts.category_from_folder):
        raise UsageError("--world gives every clip its world category: leave out --category/--category-from-folder")
    if opts.category_from_folder and category:
        raise UsageError("--category and --category-from-folder exclude each other: choose one")
    if opts.category_from_folder and not opts.local:
        raise UsageError("--category-from-folder needs --local DIR (its sub-folder names are the categories)")
    world = world_index(opts.world, recipe) if opts.world is not None else None
    enq = _Enqueue(ws, opts, res)
    cat = ws.catalog

    def world_of(name: str, where: str) -> WorldVideo:
        stem = Path(name).stem
        if stem not in world:
            raise UsageError(f"--world {opts.world}: {where} is not one of its videos (their names are "
                             f"<video id>.mp4, e.g. {next(iter(world))}.mp4)")
        return world[stem]

    # validate everything first: a refusal leaves the catalog as it was
    url_lines: list[str] = []
    if opts.urls:
        if not opts.urls.is_file():
            raise UsageError(f"--urls {opts.urls}: file not found")
        url_lines = [u.strip() for u in opts.urls.read_text(encoding="utf-8").splitlines()
                     if u.strip() and not u.strip().startswith("#")]
    csv_rows = []
    if opts.csv:
        if not opts.csv.is_file():
            raise UsageError(f"--csv {opts.csv}: file not found")
        csv_rows = read_csv_rows(opts.csv)
        valid = set(recipe.splits) | ({"test_s", "test_u"} if recipe.format == "ref-avs" else set())
        for r in csv_rows:
            if r["split"] and recipe.format == "ref-avs" and r["split"] == "test":
                r["split"] = "test_s"  # Ref-AVS's seen-category test split
            if r["split"] and r["split"] not in valid:
                raise UsageError(f"--csv {opts.csv}: row {r['ytid']},{r['start']:g} has split {r['split']!r}, which "
                                 f"recipe {recipe.name} does not have (one of: {', '.join(sorted(valid))})")
    scan = None
    if opts.local:
        if not opts.local.is_dir():
            raise UsageError(f"--local {opts.local}: not a folder")
        scan = scan_local(opts.local, ws.root)
        res.notes.extend(scan.notes)
    planned: list[Source] = []
    for url in url_lines:
        sid = "url-" + hashlib.sha1(url.encode()).hexdigest()[:12]
        src = Source(source_id=sid, kind="url", url=url, category=category)
        if world is not None:
            w = world_of(unquote(urlparse(url).path), url)
            src.video_id, src.category, src.split_hint, src.info_json = w.video_id, w.category, w.split, w.info_json
        planned.append(src)
    if scan is not None:
        wrong_folders: dict[str, int] = {}
        at_root: list[str] = []
        for p in scan.videos:
            stored = ws.stored(p.resolve())
            sid, vid = enq.local_ids(p, stored)
            rel = p.relative_to(opts.local).as_posix()
            src = Source(source_id=sid, kind="local", url=None, video_id=vid, title=rel, path=stored,
                         license="own footage (local file)", category=category)
            if world is not None:
                w = world_of(p.name, rel)
                src.video_id, src.category, src.split_hint, src.info_json = w.video_id, w.category, w.split, w.info_json
            elif opts.category_from_folder:
                c = _folder_category(recipe, opts.local, p)
                if c is None and len(p.relative_to(opts.local).parts) < 2:
                    at_root.append(rel)
                elif c is None:
                    top = p.relative_to(opts.local).parts[0]
                    wrong_folders[top] = wrong_folders.get(top, 0) + 1
                src.category = c
            planned.append(src)
        if wrong_folders:
            names = ", ".join(sorted(wrong_folders))
            raise UsageError(f"--category-from-folder: folder(s) {names} under {opts.local} are not categories of "
                             f"recipe {recipe.name} (one of: {_categories_line(recipe)})")
        if at_root:
            raise UsageError(f"--category-from-folder: {len(at_root)} video file(s) are not in a category folder "
                             f"under {opts.local} (first: {at_root[0]}); move them into a folder named after their "
                             "category, or collect them with --category")
    if opts.require_category:
        if opts.keywords and not category:
            unmatched = [k for k in opts.keywords if not recipe.match_category(k)]
            if unmatched:
                raise UsageError(f"--keywords {unmatched[0]!r} is not a category of recipe {recipe.name}: pass "
                                 f"--category C (one of: {_categories_line(recipe)})")
        for src in planned:
            if src.category is None and cat.source(src.source_id) is None:
                raise _need_category(recipe, f"--local {opts.local}" if src.kind == "local" else f"--urls {opts.urls}")
        if csv_rows and not category:
            missing = [r for r in csv_rows if not r["label"]]
            if missing:
                raise UsageError(f"--csv {opts.csv}: row {missing[0]['ytid']} has no label, so its clip would get no "
                                 f"category: pass --category C (one of: {_categories_line(recipe)})")

    # then write
    if opts.keywords:
        if opts.check_js_runtime and youtube_js_runtime_missing():
            raise AvsError(YOUTUBE_JS_HELP)
        for i, kw in enumerate(opts.keywords):
            hint = category or recipe.match_category(kw)
            try:
                entries = search_keyword(kw, opts.per_keyword, timeout=opts.timeout)
            except Exception as exc:  # noqa: BLE001 - yt-dlp raises DownloadError and others
                reason, _, _ = classify_error(str(exc))
                record(cat, f"search:{kw}", f"search failed: {reason}", str(exc)[:500],
                       {"search": kw, "source": f"search:{kw}"}, False)
                res.failed += 1
                res.sources += 1
                res.failures.append((f"search {kw!r}", f"search failed: {reason}", False))
                entries = []
            for e in entries:
                vid = e.get("id") or safe_id(e.get("url", ""))
                enq.add(Source(source_id=f"yt-{safe_id(vid, 64)}", kind="search", url=e.get("url") or youtube_url(vid),
                               video_id=safe_id(vid, 64), title=e.get("title"), keyword=kw, category=hint))
            if progress:
                progress("searching", i + 1, len(opts.keywords), kw)
    for src in planned:
        enq.add(src)
    for row in csv_rows:
        vid = safe_id(row["ytid"], 64)
        hint = category or recipe.match_category(row["label"]) or row["label"]
        enq.add(Source(source_id=f"yt-{vid}@{row['start']:g}", kind="csv", url=youtube_url(row["ytid"]),
                       video_id=vid, keyword=row["label"], category=hint, start=row["start"], split_hint=row["split"]))
    if scan is not None:
        for p, reason in scan.bad:
            stored = ws.stored(p.absolute())
            sid, vid = enq.local_ids(p, stored)
            enq.reject_on_sight(Source(source_id=sid, kind="local", video_id=vid,
                                       title=p.relative_to(opts.local).as_posix(), path=stored,
                                       category=category), reason)
    if enq.not_applied:
        what = "--world" if world is not None else f"--category {category}" if category else "--category-from-folder"
        res.notes.append(f"{what} did not apply to {enq.not_applied} source(s) already collected: their clips keep "
                         f"their category (change it with avs-tools set-category {ws.root} --clip ID --category C)")
    return enq.new

