"""sample: the frames and audio that annotation and export use, decoded once per clip.

  stage.py    the stage entry `sample(ws, opts, progress)`, its options and result, `embed_workspace`
  clip.py     one clip: decode (media.decode), write frames/WAV/log-mel/activity, record it
  outputs.py  where a sampled clip's files live, and reading them back (`activity_of`)
Decoding is `avsbench_tools.media.decode`; sound activity is `avsbench_tools.audio.activity`.
"""

from avsbench_tools.audio.activity import Activity, sound_activity
from avsbench_tools.media.decode import DecodedClip, SampledFrame, choose_frames, decode_clip
from avsbench_tools.sample.clip import (
    JPEG_QUALITY,
    SampleError,
    SampleStopped,
    encode_image,
    sample_clip,
    sample_settings,
)
from avsbench_tools.sample.outputs import activity_from, activity_of, audio_paths, frame_path
from avsbench_tools.sample.stage import (
    GRACE_S,
    Progress,
    SampleOptions,
    SampleResult,
    embed_workspace,
    sample,
)

__all__ = ["GRACE_S", "JPEG_QUALITY", "Activity", "DecodedClip", "Progress", "SampleError", "SampleOptions",
           "SampleResult", "SampleStopped", "SampledFrame", "activity_from", "activity_of", "audio_paths", "choose_frames",
           "decode_clip", "embed_workspace", "encode_image", "frame_path", "sample", "sample_clip",
           "sample_settings", "sound_activity"]
