"""collect: find, download and cut clips into a workspace (yt-dlp + ffmpeg), resumable.

    options.py   CollectOptions (what `avs-tools collect` sets) and CollectResult
    sources.py   discovery: keyword searches, URL lists, CSV rows, local folders, --world
    enqueue.py   validating every requested source, then adding it to the catalog
    download.py  yt-dlp downloads (the download key, the archive, resuming), local files
    cut.py       probing a source, exact CFR clips, checking each clip before it is kept
    ledger.py    SourceError, retryable failures vs permanent rejections, ledger rows
    stage.py     the stage entry `collect(ws, opts, progress)`: workers, retries, the per-host
                 circuit breaker, Ctrl-C

Layers (no cycles): options, ledger -> sources -> enqueue, download, cut -> stage. yt-dlp and
PyAV are imported inside the functions that use them.
"""

from avsbench_tools.collect.cut import check_media, clip_id_for, clip_starts, cut_clip
from avsbench_tools.collect.download import download_key, download_source, is_partial, remove_partials
from avsbench_tools.collect.enqueue import enqueue_sources
from avsbench_tools.collect.ledger import (
    SourceError,
    classify_error,
    is_cc,
    is_permanent,
    record,
    source_label,
)
from avsbench_tools.collect.options import CollectOptions, CollectResult
from avsbench_tools.collect.sources import (
    AUDIO_EXTS,
    VIDEO_EXTS,
    YOUTUBE_JS_HELP,
    LocalScan,
    WorldVideo,
    YdlLog,
    build_search,
    local_ids,
    read_csv_rows,
    safe_id,
    scan_local,
    search_keyword,
    world_index,
    youtube_js_runtime_missing,
    youtube_url,
)
from avsbench_tools.collect.stage import collect, process_source
from avsbench_tools.progress import Progress

__all__ = [
    "AUDIO_EXTS", "VIDEO_EXTS", "YOUTUBE_JS_HELP", "CollectOptions", "CollectResult", "LocalScan", "Progress",
    "SourceError", "WorldVideo", "YdlLog", "build_search", "check_media", "classify_error", "clip_id_for",
    "clip_starts", "collect", "cut_clip", "download_key", "download_source", "enqueue_sources", "is_cc",
    "is_partial", "is_permanent", "local_ids", "process_source", "read_csv_rows", "record", "remove_partials",
    "safe_id", "scan_local", "search_keyword", "source_label", "world_index", "youtube_js_runtime_missing",
    "youtube_url",
]
