"""The text prompts of a clip: what every text-prompted backend (grounded-sam, sam3) and the CLAP tagger ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avsbench_tools.catalog import Clip
    from avsbench_tools.workspace import Workspace


def prompts_for(ws: Workspace, clip: Clip, prompt: list[str] | None) -> dict[str, str]:
    """{category: text prompt}: the --prompt texts (matched onto recipe categories), else the clip's
    category, else every recipe category."""
    if prompt:
        return {(ws.recipe.match_category(p) or p): p for p in prompt}
    if clip.category and clip.category in ws.recipe.categories:
        return {clip.category: ws.recipe.prompt_for(clip.category)}
    return dict(ws.recipe.categories)
