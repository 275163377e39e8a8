"""Issue 21, item 9: hints that are true. Every `next:` line reflects the real state and quotes its paths for
the shell; `export --split ""` is an error; validate and stats read the format from the release's marker;
`preview --masks` writes its own file; stats states the share of unreviewed proposals, as the card does.
All through the real CLI, on a synthetic world taken through the README's path once (a folder with a space)."""

from __future__ import annotations

import shlex

import pytest

from tests.helpers import cli_here


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, world_ms3):
    """init (the world's recipe) -> collect --world -> sample -> preannotate -> export --include-unreviewed."""
    base = tmp_path_factory.mktemp("hints")
    ws, rel = base / "my ws", base / "my rel"
    init = cli_here("init", ws, "--recipe", world_ms3 / "recipe.toml", check=True)
    cli_here("collect", ws, "--world", world_ms3, "-q", check=True)
    cli_here("sample", ws, "-q", check=True)
    cli_here("preannotate", ws, "-q", check=True)
    cli_here("export", ws, rel, "--include-unreviewed", "-q", check=True)
    return {"ws": ws, "rel": rel, "world": world_ms3, "init": init}


def _next(stdout: str) -> list[str]:
    """The `next:` line as the shell would split it."""
    line = stdout.strip().splitlines()[-1]
    assert line.startswith("next: "), stdout
    return shlex.split(line[len("next: "):])


def test_init_from_a_world_recipe_says_collect_world_with_quoted_paths(pipeline):
    """Row: init from a synthetic world's recipe suggested `--local DIR`; paths with spaces came out unquoted."""
    words = _next(pipeline["init"].stdout)
    assert words == ["avs-tools", "collect", str(pipeline["ws"]), "--world", str(pipeline["world"])]
    line = pipeline["init"].stdout.strip().splitlines()[-1]
    assert shlex.quote(str(pipeline["ws"])) in line and "'" in line  # the space is quoted


def test_export_split_empty_is_an_error(pipeline, tmp_path):
    """Row: `export --split ""` exported every split."""
    r = cli_here("export", pipeline["ws"], tmp_path / "out", "--split", "")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and '--split ""' in lines[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_validate_and_stats_read_the_format_from_the_marker(pipeline, tmp_path):
    """Row: `validate REL` and `stats REL` without --format were refused although the marker names the format."""
    r = cli_here("validate", pipeline["rel"])
    assert r.returncode == 0 and "validate: avsbench-ms3 release" in r.stdout, r.stderr
    assert _next(r.stdout)[:3] == ["avs-tools", "stats", str(pipeline["rel"])]  # quoted, pasteable
    r = cli_here("stats", pipeline["world"] / "gold", "--out", tmp_path / "gold.html", "-q")  # a gold release's stamp
    assert r.returncode == 0 and (tmp_path / "gold.html").is_file(), r.stderr
    bare = tmp_path / "bare"  # no marker: the format must be given, said in one line
    (bare / "Multi-sources").mkdir(parents=True)
    r = cli_here("validate", bare)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "pass --format" in r.stderr


def test_stats_states_the_share_of_unreviewed_proposals(pipeline, tmp_path):
    """Row: stats on a release whose masks are mostly unreviewed proposals never said so (the card does)."""
    card = (pipeline["rel"] / "DATASET_CARD.md").read_text()
    n = int(card.split("- object masks from unreviewed pre-annotation: ")[1].split()[0])
    assert n > 0 and "- object masks from human review: 0" in card
    r = cli_here("stats", pipeline["rel"], "--out", tmp_path / "s.html", "-q")
    assert r.returncode == 0, r.stderr
    assert f"object masks: {n} of {n} (100%) unreviewed proposals, 0 human-reviewed (DATASET_CARD.md)" in r.stdout
    assert f"warning: {n} of {n} object masks (100%) are unreviewed machine proposals" in r.stdout
    assert "unreviewed machine proposals" in (tmp_path / "s.html").read_text()


def test_preview_masks_writes_its_own_file(pipeline):
    """Row: `preview --masks` overwrote the plain preview at the same path."""
    plain = cli_here("preview", pipeline["ws"])
    masked = cli_here("preview", pipeline["ws"], "--masks")
    assert plain.returncode == 0 and masked.returncode == 0, plain.stderr + masked.stderr
    p1 = plain.stdout.split("preview: ")[1].strip()
    p2 = masked.stdout.split("preview: ")[1].split(".png")[0] + ".png"
    assert p1.endswith(".png") and p2 == p1[:-4] + "-masks.png"
    from pathlib import Path

    a, b = Path(p1), Path(p2)
    assert a.is_file() and b.is_file() and a.read_bytes() != b.read_bytes()
