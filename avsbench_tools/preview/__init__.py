"""preview: a contact sheet PNG of one clip, laid out on the clip's time axis (`avs-tools preview`).

Each sampled frame sits above the second it was sampled from (aspect ratio kept), titled with its
second, decoded frame index and presentation time. Silent seconds are greyed with a 'silent'
label. With masks, each object is filled and outlined in one colour per object id for the whole
clip (dashed outline: believed not to sound in that second), tagged with its id on the frame and
listed under it with its category and score. Under the frames, on the same time axis: the
waveform scaled to the clip's peak (dBFS axis), the log-mel spectrogram (Hz, seconds; the same
64 bands VGGish sees) and the per-second sound level against the clip's noise floor, with the
sampled frame times marked on each.

The PNG carries a text chunk `Software: avs-tools preview`, by which `--out` recognises a preview
it wrote earlier (and never overwrites any other file).

    stage.py   the entry `preview_clip(ws, clip_id, out, masks)`: which clip, where the PNG goes
    marks.py   what the picture says, as pure functions: silent seconds, the sound threshold, one
               colour per object id (`plan_objects` over `mask_store.shown_masks`), the waveform axis
    sheet.py   the clip as the sheet reads it (`read_clip`) and the rows of the sheet (`layout`)
    draw.py    the drawing (matplotlib, imported only when a preview is drawn): `render_preview`
    png.py     recognising a PNG this command wrote (its text chunk), and checking --out
It only reads the workspace (through the catalog's typed methods), so it runs beside a stage.
"""

from avsbench_tools.preview.draw import render_preview
from avsbench_tools.preview.marks import (
    MARK_COLOUR,
    MAX_FRAME_H,
    MAX_LISTED,
    PALETTE,
    SILENT_FILL,
    DrawnObject,
    ObjectPlan,
    object_colours,
    plan_objects,
    silent_seconds,
    sound_threshold,
    wave_axis,
)
from avsbench_tools.preview.png import PNG_SIGNATURE, SOFTWARE, check_preview_out, is_our_png, png_text
from avsbench_tools.preview.stage import PreviewResult, preview_clip

__all__ = ["MARK_COLOUR", "MAX_FRAME_H", "MAX_LISTED", "PALETTE", "PNG_SIGNATURE", "SILENT_FILL", "SOFTWARE",
           "DrawnObject", "ObjectPlan", "PreviewResult", "check_preview_out", "is_our_png", "object_colours",
           "plan_objects", "png_text", "preview_clip", "render_preview", "silent_seconds", "sound_threshold",
           "wave_axis"]
