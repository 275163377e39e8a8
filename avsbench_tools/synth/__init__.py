"""A synthetic audio-visual world with exact ground truth (`avs-tools synth OUT`).

    render.py  the scene: categories (shape, colour, sound), motion, schedule, expressions, render_clip
    tones.py   the "tones" scene: same-shape objects, each colour its own tone; only audio says which sounds
    world.py   writing a world: videos, truth, recipe, marker, resume (`synthesize`)
    gold.py    the world's recipe and its gold release in an official layout (through masks_to_clip)
"""

from avsbench_tools import formats
from avsbench_tools.synth.gold import (
    avss_subset,
    gold_clips,
    gold_name,
    main_category,
    recipe_text,
    truth_masks,
    world_splits,
    write_gold,
)
from avsbench_tools.synth.render import (
    AUDIO_RATE,
    BY_NAME,
    CATEGORIES,
    SCENES,
    TONE_CATEGORIES,
    SynthCategory,
    SynthClip,
    SynthParams,
    scene_categories,
    shape_mask,
    video_id,
)
from avsbench_tools.synth.scene import render_clip
from avsbench_tools.synth.world import (
    KIND,
    WORLD_NAMES,
    check_world_dir,
    is_legacy_world,
    load_instances,
    load_truth,
    synthesize,
)

GOLD_FORMATS = formats.names()  # every release format has a gold release

__all__ = [
    "AUDIO_RATE", "BY_NAME", "CATEGORIES", "GOLD_FORMATS", "KIND", "SCENES", "TONE_CATEGORIES", "WORLD_NAMES",
    "SynthCategory", "SynthClip", "SynthParams", "avss_subset", "check_world_dir", "gold_clips", "gold_name", "is_legacy_world",
    "load_instances", "load_truth", "main_category", "recipe_text", "render_clip", "scene_categories", "shape_mask",
    "synthesize", "truth_masks", "video_id", "world_splits", "write_gold",
]
