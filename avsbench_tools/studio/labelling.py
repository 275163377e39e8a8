"""The Label Studio labelling config generated from a recipe, and the annotation guidelines.

The names below are a contract with pull (`studio/pull.py`): an `<Image name="image">` per task
(one sampled frame), `<Audio name="audio">` (the clip's 16 kHz WAV from the frame's second to the clip's end,
studio/excerpt.py: its first second, [0, 1), is the task's, marked by a read-only region of the hidden
`<Labels name="second">`, which pull ignores), `<Video name="video">` (the whole clip, for context),
`<BrushLabels name="mask" toName="image">`
with one label per recipe category, `<Choices name="frame">` for the per-frame flags, and for
Ref-AVS a per-region `<TextArea name="expression">`. The guidelines (annotation/*.html) become the
project's instructions.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from avsbench_tools.recipe import Recipe

IMAGE, AUDIO, VIDEO = "image", "audio", "video"
MASK, FRAME, EXPRESSION = "mask", "frame", "expression"
#: the audio region that marks the task's second: Label Studio 1.23's player opens at 0 s (no attribute or data field
#: moves it), so the task's audio starts at the task's second (studio/excerpt.py) and the region is its [0, 1): a
#: `<Labels>` on the audio (hidden: annotators never draw with it), one read-only region of it in every prediction
#: (push_build.second_region, its meta text "second s of the clip"). Pull ignores it (it is not a mask). Selected
#: (Alt+., Label Studio's "cycle regions", selects it first: it is the first region; or click it in the Regions
#: list), the Audio tag's hotkey plays just that second: Label Studio 1.23 plays a selected region from its start to
#: its end. The label names where the audio starts: a project whose config has another (made when the task's audio
#: was the whole clip) gets no region.
SECOND, SECOND_LABEL = "second", "this task's second (the audio starts at it)"
AUDIO_HOTKEY = "ctrl+p"  # play/pause the audio (from the task's second; with its region selected: just that second)
NO_SOUND, UNUSABLE = "no sounding object", "unusable frame"
FRAME_CHOICES = (NO_SOUND, UNUSABLE)

#: The control tags (name -> (tag, toName)) every config of ours has; Ref-AVS adds EXPRESSION.
REQUIRED_CONTROLS = {MASK: ("brushlabels", IMAGE), FRAME: ("choices", IMAGE)}
REQUIRED_OBJECTS = {IMAGE: "image", AUDIO: "audio"}


def annotation_dir() -> Path:
    """The repository's annotation/ folder (guidelines), next to pipelines/ (editable install)."""
    return Path(__file__).resolve().parent.parent.parent / "annotation"


def categories(recipe: Recipe) -> list[str]:
    """The brush labels of a recipe: its categories (S4/MS3: exported as binary masks; AVSS: the
    semantic classes, background implicit; Ref-AVS: the object categories), in recipe order."""
    return list(recipe.categories)


#: the per-frame flags' hotkeys (the labels take 1-9 in recipe order, Label Studio's own default)
FLAG_HOTKEYS = {NO_SOUND: "shift+n", UNUSABLE: "shift+u"}
#: how to use the editor, one line in every task's header (annotation/guidelines.html says it at length)
TOOL_LINE = ("Tools: B brush, E eraser (select the region first: click it in the Regions list), "
             "Backspace deletes the selected region, Shift+1 zooms to fit, each label's key is on its button, "
             "Shift+N no sounding object, Shift+U unusable frame, Ctrl+P plays the audio from this task's second, "
             "Alt+. then Ctrl+P just that second (Alt+. selects its yellow region), Ctrl+Enter submits")


#: the Image tag's sizing. Label Studio 1.23's default, defaultZoom="fit", zooms a small frame past its box
#: (a 320x240 frame opened at 1.41x in a 1366x768 window, ~18% of it cut off); "auto" starts at zoom 1: the
#: frame at its own size, or shrunk to the box (width, and 62% of the window's height). The whole frame is
#: visible when a task opens (tests/studio/test_browser_fit.py, 1366x768 and 1920x1080 windows). Left-aligned:
#: horizontalAlignment="center" draws the frame ~45 px right of where the page places its <img>.
IMAGE_FIT = 'defaultZoom="auto" width="100%" maxWidth="100%" maxHeight="62vh"'


_LETTERS = "qwtasdfgzxcvyiopjklmnur"  # not b, e, h: the brush, the eraser and the hand (pan) tools


def label_hotkeys(n: int) -> list[str]:
    """The labels' hotkeys in recipe order, explicit so that Label Studio never hands a label the brush's,
    the eraser's or the hand's key: 1-9, 0, the other letters, then Shift+ and Alt+ letters (never Shift+1,
    which zooms to fit, nor the flags' Shift+N / Shift+U, nor Alt+F, which opens the browser's menu)."""
    flags = set(FLAG_HOTKEYS.values())
    keys = [*"1234567890", *_LETTERS, *(k for c in _LETTERS if (k := f"shift+{c}") not in flags),
            *(f"alt+{c}" for c in _LETTERS if c != "f")]
    if n > len(keys):
        raise ValueError(f"{n} labels: more than the {len(keys)} hotkeys there are")
    return keys[:n]


def _label(name: str, hint: str | None, colour: str, hotkey: str) -> str:
    attrs = f"value={quoteattr(name)} background={quoteattr(colour)} hotkey={quoteattr(hotkey)}"
    if hint and hint != name:  # the hint beside the name on the label's button, not only on hover
        attrs += f" hint={quoteattr(hint)} html={quoteattr(f'{escape(name)} <i>({escape(hint)})</i>')}"
    return f"      <Label {attrs}/>"


def label_config(recipe: Recipe) -> str:
    """The labelling config (XML) for a recipe's project: frame, audio, clip video, brush labels per
    category, the per-frame choices and (Ref-AVS) a referring expression per region."""
    fmt = recipe.release_format
    from avsbench_tools.palette import label_colours

    colours = label_colours(categories(recipe))
    cats = categories(recipe)
    labels = "\n".join(_label(c, recipe.categories.get(c), colours[c], k) for c, k in zip(cats, label_hotkeys(len(cats)),
                                                                                         strict=True))
    choices = "\n".join(f"      <Choice value={quoteattr(v)} hotkey={quoteattr(FLAG_HOTKEYS[v])}/>"
                         for v in FRAME_CHOICES)
    expression = ""
    if fmt.per_object:
        expression = (
            '\n    <Header value="Referring expression of the selected region (unique in the clip; every word '
            'narrows the target)" size="6"/>\n'
            f'    <TextArea name="{EXPRESSION}" toName="{IMAGE}" perRegion="true" editable="true" '
            'maxSubmissions="1" rows="2" placeholder="e.g. the man playing the guitar on the left"/>')
    kind = {"binary": "Paint every object sounding in this second (the export merges them into one binary mask)",
            "semantic": "Paint every object sounding in this second with its class",
            "per-object": "Paint each object sounding in this second as its own region"}[fmt.masks]
    return f"""<View>
  <Header value="$note" size="5"/>
  <Header value={quoteattr(TOOL_LINE)} size="6"/>
  <View style="display: flex; gap: 1em; align-items: flex-start">
    <View style="flex: 3; min-width: 0">
      <Image name="{IMAGE}" value="${IMAGE}" {IMAGE_FIT} zoom="true" zoomControl="true" rotateControl="false"/>
    </View>
    <View style="flex: 2; min-width: 0">
      <Header value="Audio from this task's second to the clip's end (the yellow region is this second)" size="6"/>
      <Audio name="{AUDIO}" value="${AUDIO}" hotkey="{AUDIO_HOTKEY}"/>
      <View style="display: none">
        <Labels name="{SECOND}" toName="{AUDIO}">
          <Label value="{SECOND_LABEL}" background="#ffb000" hotkey="ctrl+alt+9"/>
        </Labels>
      </View>
      <Header value="Clip video (the whole clip, for context)" size="6"/>
      <Video name="{VIDEO}" value="${VIDEO}" frameRate="$fps" height="200"/>
    </View>
  </View>
  <Header value={quoteattr(kind)} size="6"/>
  <BrushLabels name="{MASK}" toName="{IMAGE}">
{labels}
  </BrushLabels>
  <Choices name="{FRAME}" toName="{IMAGE}" choice="multiple" showInline="true">
{choices}
  </Choices>{expression}
</View>
"""


def instructions(recipe: Recipe) -> str:
    """The project's instructions (HTML): annotation/guidelines.html, plus annotation/ref-avs.html for a
    per-object (Ref-AVS) recipe, with the recipe's name and categories filled in."""
    d = annotation_dir()
    parts = [(d / "guidelines.html").read_text(encoding="utf-8")]
    if recipe.release_format.per_object:
        parts.append((d / "ref-avs.html").read_text(encoding="utf-8"))
    cats = ", ".join(escape(f"{c} ({p})" if p != c else c) for c, p in recipe.categories.items())
    html = re.sub(r"<!--.*?-->\s*", "", "\n".join(parts), flags=re.S)  # the server drops comments: so do we
    return html.replace("{recipe}", escape(recipe.name)).replace("{categories}", cats).strip() + "\n"


def _tag(li, name: str):
    try:
        return li.get_tag(name)
    except Exception:  # noqa: BLE001 - the SDK raises a bare Exception for an unknown name
        return None


def check_config(config: str, recipe: Recipe) -> list[str]:
    """What a project's labelling config lacks for push and pull: the names of this module's tags
    (with their tag type and target) and the recipe's category labels. [] when it is usable."""
    from label_studio_sdk.label_interface import LabelInterface

    try:
        li = LabelInterface(config)
    except Exception as exc:  # noqa: BLE001 - any parse failure is "not usable"
        return [f"the config does not parse ({str(exc).splitlines()[0][:120]})"]
    missing = []
    for name, tag in REQUIRED_OBJECTS.items():
        obj = _tag(li, name)
        if obj is None or obj.tag.lower() != tag:
            missing.append(f"<{tag.capitalize()} name=\"{name}\">")
    want = dict(REQUIRED_CONTROLS)
    if recipe.release_format.per_object:
        want[EXPRESSION] = ("textarea", IMAGE)
    for name, (tag, to) in want.items():
        ctl = _tag(li, name)
        if ctl is None or ctl.tag.lower() != tag or to not in ctl.to_name:
            missing.append(f"<{tag} name=\"{name}\" toName=\"{to}\">")
    mask = _tag(li, MASK)
    if mask is not None and mask.tag.lower() == "brushlabels":
        have = set(mask.labels or [])
        lost = [c for c in categories(recipe) if c not in have]
        if lost:
            missing.append(f"the label{'s' if len(lost) > 1 else ''} {', '.join(lost[:3])}"
                           f"{f' and {len(lost) - 3} more' if len(lost) > 3 else ''} of {MASK}")
    frame = _tag(li, FRAME)
    if frame is not None and frame.tag.lower() == "choices":
        lost = [c for c in FRAME_CHOICES if c not in set(frame.labels or [])]
        if lost:
            missing.append(f"the choice{'s' if len(lost) > 1 else ''} {', '.join(repr(c) for c in lost)} of {FRAME}")
    return missing


#: control tags that paint or outline regions on the image (pull uses only MASK's brush labels)
REGION_CONTROLS = {"brushlabels", "brush", "bitmasklabels", "bitmask", "polygonlabels", "polygon",
                   "rectanglelabels", "rectangle", "ellipselabels", "ellipse", "keypointlabels", "keypoint",
                   "magicwand"}


def unknown_controls(config: str, recipe: Recipe) -> list[str]:
    """What a project's labelling config has that the recipe does not know: region controls other than
    `<BrushLabels name="mask">` and labels of `mask` that are not recipe categories. [] when none."""
    from label_studio_sdk.label_interface import LabelInterface

    try:
        li = LabelInterface(config)
    except Exception:  # noqa: BLE001 - check_config reports a config that does not parse
        return []
    out = []
    for ctl in li.controls:
        if ctl.name != MASK and ctl.tag.lower() in REGION_CONTROLS:
            out.append(f"the region control <{ctl.tag} name=\"{ctl.name}\">")
    mask = _tag(li, MASK)
    if mask is not None and mask.tag.lower() == "brushlabels":
        extra = [x for x in mask.labels or [] if x not in set(categories(recipe))]
        if extra:
            out.append(f"the label{'s' if len(extra) > 1 else ''} {', '.join(extra[:3])}"
                       f"{f' and {len(extra) - 3} more' if len(extra) > 3 else ''} of {MASK}")
    return out

