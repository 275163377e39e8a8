"""status: only stages this build can run, the failure ledger with retryable/permanent, --failures."""

from __future__ import annotations

import json

from avsbench_tools.catalog import Catalog, Clip, Source
from avsbench_tools.cli import app
from avsbench_tools.workspace import init_workspace
from avsbench_tools.ws_status import workspace_status
from tests.helpers import cli_here
from tests.helpers.catalog_rows import put_stage

SHOWN = ["collect", "sample", "preannotate", "push", "pull", "export"]


def _ws_with_failures(tmp_path, n: int = 8):
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    cat = ws.catalog
    for i in range(n):
        sid = f"yt-v{i}"
        cat.add_source_if_new(Source(source_id=sid, kind="url", url=f"https://example.org/v{i}.mp4", status="failed"))
        cat.record_failure("collect", sid, f"HTTP 50{i % 10}", payload={"kind": "error", "url": f"https://example.org/v{i}.mp4"})
    cat.add_source_if_new(Source(source_id="local-a", kind="local", url="file:///home/someone/videos/a.m4a",
                             path="/home/someone/videos/a.m4a", status="rejected"))
    cat.record_failure("collect", "local-a", "rejected: no audio stream", permanent=True)
    cat.add_source_if_new(Source(source_id="yt-old", kind="csv", url="https://www.youtube.com/watch?v=old"))
    cat.record_failure("collect", "yt-old", "rejected: licence", payload={"kind": "rejected"})  # an older rejection
    cat.add_clip(Clip(clip_id="c1", source_id="local-a", start=0, seconds=5, path="clips/c1.mp4"))
    put_stage(cat, "c1", "sample", "failed", reason="cannot open")
    cat.record_failure("sample", "c1", "cannot open")
    ws.close()
    return tmp_path / "ws"


def test_status_shows_only_stages_with_a_command(tmp_path):
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    ws.close()
    commands = {(c.name or c.callback.__name__) for c in app.registered_commands}
    assert set(SHOWN) <= commands  # every stage shown is one the user can run
    st = json.loads(cli_here("status", tmp_path / "ws", "--json", check=True).stdout)
    assert list(st["stages"]) == SHOWN
    assert all(set(v) == {"done", "failed", "pending"} for v in st["stages"].values())
    text = cli_here("status", tmp_path / "ws", check=True).stdout
    for stage in SHOWN:
        assert stage in text
    assert "next: avs-tools collect" in text  # an empty workspace: what to run first


def test_status_failures_flag_lists_every_row_with_retryable(tmp_path):
    ws = _ws_with_failures(tmp_path)
    st = workspace_status(ws)
    rows = {r["item"]: r for r in st["failures"]}
    assert len(rows) == 11
    assert rows["local-a"]["retryable"] is False and rows["local-a"]["source"] == "a.m4a"  # file name only
    assert rows["yt-old"]["retryable"] is False  # an older rejection (payload kind) is permanent too
    assert rows["yt-v3"]["retryable"] is True and rows["yt-v3"]["source"] == "https://example.org/v3.mp4"
    assert rows["c1"]["stage"] == "sample" and rows["c1"]["retryable"] is True
    default = cli_here("status", ws)
    assert default.returncode == 0
    shown = [ln for ln in default.stdout.splitlines() if "HTTP 50" in ln or "rejected" in ln or "cannot open" in ln]
    assert len(shown) == 5
    assert f"and 6 more: avs-tools status {ws} --failures" in default.stderr
    full = cli_here("status", ws, "--failures")
    assert full.returncode == 0 and "more:" not in full.stderr
    for item in rows:
        assert item in full.stdout
    assert "/home/someone" not in full.stdout
    assert "no (permanent)" in full.stdout and "yes" in full.stdout
    assert f"avs-tools collect {ws} --retry-failed" in full.stderr
    st_json = json.loads(cli_here("status", ws, "--json", check=True).stdout)
    assert {r["item"] for r in st_json["failures"]} == set(rows)
    assert all({"stage", "item", "source", "reason", "attempts", "retryable"} <= set(r) for r in st_json["failures"])


def test_permanent_column_is_added_to_an_older_catalog(tmp_path):
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    ws.close()
    cat = Catalog(tmp_path / "ws" / "catalog.sqlite")
    cat.db.execute("ALTER TABLE failures DROP COLUMN permanent")  # a catalog made before the column existed
    cat.record_failure("collect", "old-style", "HTTP 404")  # the old call still works and adds the column
    cat.record_failure("collect", "no-audio", "rejected: no audio stream", permanent=True)
    cols = {r[1] for r in cat.db.execute("PRAGMA table_info(failures)")}
    assert "permanent" in cols
    by_item = {f.item: f for f in cat.failures()}
    assert not by_item["old-style"].permanent and by_item["no-audio"].permanent == 1
    cat.record_failure("collect", "no-audio", "rejected: no audio stream", permanent=True)
    assert {f.item: f.attempts for f in cat.failures()}["no-audio"] == 2
    cat.close()
    st = workspace_status(tmp_path / "ws")
    assert {r["item"]: r["retryable"] for r in st["failures"]} == {"old-style": True, "no-audio": False}


def test_status_reads_an_older_catalog_without_the_column(tmp_path):
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    ws.catalog.db.execute("ALTER TABLE failures DROP COLUMN permanent")
    ws.catalog.db.execute("INSERT INTO failures(stage, item, reason, first_at, last_at) VALUES('collect', 'x', 'r', 't', 't')")
    ws.close()
    st = json.loads(cli_here("status", tmp_path / "ws", "--json", check=True).stdout)
    assert st["failures"][0]["retryable"] is True


def test_next_step_follows_the_label_studio_round_trip(tmp_path):
    """After preannotate: push (or export unreviewed); after push: pull; after pull: export."""
    from avsbench_tools.cli.status import _next_step

    ws, _ = init_workspace(tmp_path / "ws", "avsbench-s4")
    ws.catalog.add_source_if_new(Source(source_id="s", kind="url", url="https://example.org/s.mp4", status="done"))
    ws.catalog.add_clip(Clip(clip_id="c1", source_id="s", start=0, seconds=5, path="clips/c1.mp4"))
    path = tmp_path / "ws"
    hints = []
    for stage in ("sample", "preannotate", "push", "pull", None):
        hints.append(_next_step(path, workspace_status(path)))
        if stage:
            put_stage(ws.catalog, "c1", stage, "done")
    ws.close()
    assert hints[:2] == [f"avs-tools sample {path}", f"avs-tools preannotate {path}"]
    assert hints[2].startswith(f"avs-tools push {path}") and f"export {path} OUT --include-unreviewed" in hints[2]
    assert hints[3].startswith(f"avs-tools pull {path}")
    assert hints[4] == f"avs-tools export {path} OUT"  # every clip reviewed: nothing unreviewed to include


def test_status_right_after_a_pull_says_the_review_goes_on_in_the_studio(tmp_path):
    """Issue 21: `status` right after a pull that brought part of the reviews said 'next: avs-tools pull ws' as if
    no pull had run. Now it names what the pull left: finish the review, then pull; or export the proposals."""
    ws, _ = init_workspace(tmp_path / "my ws", "avsbench-s4")
    ws.catalog.add_source_if_new(Source(source_id="s", kind="url", url="https://example.org/s.mp4", status="done"))
    for c in ("c1", "c2", "c3"):
        ws.catalog.add_clip(Clip(clip_id=c, source_id="s", start=0, seconds=5, path=f"clips/{c}.mp4"))
        for stage in ("sample", "preannotate", "push"):
            put_stage(ws.catalog, c, stage, "done")
    put_stage(ws.catalog, "c1", "pull", "done")
    put_stage(ws.catalog, "c2", "pull", "partial")
    ws.close()
    out = cli_here("status", tmp_path / "my ws", check=True).stdout
    quoted = "'" + str(tmp_path / "my ws") + "'"
    assert out.strip().splitlines()[-1] == (
        f"next: finish the review in Label Studio (1 clips fully reviewed, 1 partly, 1 not yet), then avs-tools pull "
        f"{quoted}; or now: avs-tools export {quoted} OUT --include-unreviewed  (proposals where no review exists)")
