"""Per-second sound activity: which seconds of a clip sound, against the clip's own noise floor.

`sound_activity(pcm, rate, seconds)` computes it (sample stores it with the clip's audio row in the
catalog); `Activity.from_dict` reads it back (`avsbench_tools.sample.activity_of(ws, clip_id)` does
both steps for a workspace). Preannotate gates sounding masks on it; preview greys silent seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

WINDOW_S = 0.02
FLOOR_PERCENTILE = 10
LEVEL_PERCENTILE = 90  # a second sounds if its loudest ~100 ms rise above the floor
MIN_RELATIVE_DB = 10.0
ABS_SILENCE_DB = -60.0  # below this nothing sounds, whatever the floor
ABS_LOUD_DB = -30.0  # above this a second sounds even without a quiet floor (a constant drone)


@dataclass
class Activity:
    """Per-second sound activity: the loud part of each second against the clip's noise floor."""

    level_db: list[float]  # per second: 90th percentile of 20 ms window energies (dBFS)
    floor_db: float  # the clip's noise floor: 10th percentile of all 20 ms windows (dBFS)
    relative_db: list[float]
    active: list[bool]
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The stored form (the catalog's activity JSON holds these keys, plus what sample adds)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Activity:
        """An Activity from its stored form; keys it does not know (sample's `info`) are ignored."""
        return cls(d["level_db"], d["floor_db"], d["relative_db"], d["active"], d.get("params", {}))


def sound_activity(pcm: np.ndarray, sample_rate: int, seconds: int) -> Activity:
    """RMS energy per second relative to the clip's noise floor.

    The audio is cut into 20 ms windows. The floor is the 10th percentile of all window energies;
    a second's level is the 90th percentile of its windows, so a click or a fade at the second's
    edge does not count as sound, while a sound that fills ~100 ms does. A second is active when
    its level is above -60 dBFS and either >= 10 dB above the floor or louder than -30 dBFS.
    Seconds past the end of the audio are silent.
    """
    x = np.asarray(pcm, dtype=np.float64)
    if x.ndim > 1:
        x = x.mean(axis=1)
    x = x / 32768.0
    win = max(1, int(round(WINDOW_S * sample_rate)))
    n_win = x.shape[0] // win
    energies = (x[: n_win * win].reshape(n_win, win) ** 2).mean(axis=1) if n_win else np.zeros(0)
    db = 10 * np.log10(energies + 1e-12)
    floor = float(np.percentile(db, FLOOR_PERCENTILE)) if db.size else -120.0
    per_sec = int(round(sample_rate / win))
    level, rel, active = [], [], []
    for sec in range(seconds):
        part = db[sec * per_sec:(sec + 1) * per_sec]
        lv = float(np.percentile(part, LEVEL_PERCENTILE)) if part.size >= per_sec // 2 else -120.0
        r = lv - floor
        level.append(round(lv, 2))
        rel.append(round(r, 2))
        active.append(bool(lv > ABS_SILENCE_DB and (r >= MIN_RELATIVE_DB or lv >= ABS_LOUD_DB)))
    return Activity(level, round(floor, 2), rel, active,
                    {"window_s": WINDOW_S, "floor_percentile": FLOOR_PERCENTILE,
                     "level_percentile": LEVEL_PERCENTILE, "min_relative_db": MIN_RELATIVE_DB,
                     "abs_silence_db": ABS_SILENCE_DB, "abs_loud_db": ABS_LOUD_DB})
