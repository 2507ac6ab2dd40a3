"""AU regions of interest (RoIs) from iBUG 68-point landmarks (EAC-Net centres).

See docs/method.md, "AU regions of interest".

Every AU has two centres, each a landmark moved vertically by a multiple of the ``ruler``
``|x39 - x42|`` (the inner-eye-corner distance); positive offsets point down the image:

======  ==========  ===========  ==========================================
AU      landmarks   y offset     note
======  ==========  ===========  ==========================================
AU1     21, 22      -1/2 ruler   inner brows
AU2     18, 25      -1/3 ruler   outer brows
AU4     19, 24      +1/3 ruler   between brow and eye
AU6     41, 46      +1 ruler     cheeks below the eyes
AU7     38, 43      0            lids
AU9     39, 42      +1/2 ruler   nose sides (DISFA extra; our offset choice)
AU10    49, 53      0            upper lip
AU12    48, 54      0            lip corners (shared by AU14 and AU15)
AU17    56, 58      +1/2 ruler   chin below the lower lip (our choice of the two options)
AU23    61, 63      0            inner lips (shared by AU24)
AU25    51, 57      0            lip centres (DISFA extra)
AU26    56, 58      0            lower lip (DISFA extra)
======  ==========  ===========  ==========================================

The RoI order is the order of the AU list, two per AU: ``AU01_a, AU01_b, AU02_a, ...`` where
``_a`` is the first landmark of the pair above. The default AU list is :data:`aurep.au.SYNTH_AUS`
(AUs 1 2 4 6 7 9 10 12 14 15 17 23 24 25 26, so R = 30). Landmarks are moved by any geometric
augmentation before the boxes are computed, so boxes follow the image (and a flipped face keeps
``_a`` on the image-left side for the left/right pairs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from aurep.au import SYNTH_AUS, au_column
from aurep.landmarks import INNER_EYE_CORNERS, JAW_ENDS

# AU code -> ((landmark a, landmark b), y offset in rulers)
ROI_CENTRES: dict[int, tuple[tuple[int, int], float]] = {
    1: ((21, 22), -1 / 2),
    2: ((18, 25), -1 / 3),
    4: ((19, 24), 1 / 3),
    6: ((41, 46), 1.0),
    7: ((38, 43), 0.0),
    9: ((39, 42), 1 / 2),
    10: ((49, 53), 0.0),
    12: ((48, 54), 0.0),
    14: ((48, 54), 0.0),
    15: ((48, 54), 0.0),
    17: ((56, 58), 1 / 2),
    23: ((61, 63), 0.0),
    24: ((61, 63), 0.0),
    25: ((51, 57), 0.0),
    26: ((56, 58), 0.0),
}
ROI_SIZE_UNITS = ("face", "px")


def _check_aus(au_codes: Sequence[int]) -> list[int]:
    unknown = [code for code in au_codes if code not in ROI_CENTRES]
    if unknown:
        raise ValueError(f"no RoI centres for AUs {unknown}; known: {sorted(ROI_CENTRES)}")
    if not au_codes:
        raise ValueError("roi AU list is empty")
    return [int(code) for code in au_codes]


def roi_names(au_codes: Sequence[int] = SYNTH_AUS) -> list[str]:
    """Names of the R = 2 * len(au_codes) RoIs, in box order: ``['AU01_a', 'AU01_b', ...]``."""
    return [f"{au_column(code)}_{side}" for code in _check_aus(au_codes) for side in "ab"]


def roi_centres(landmarks, au_codes: Sequence[int] = SYNTH_AUS):
    """landmarks: (..., 68, 2) pixels (numpy or torch) -> (..., R, 2) RoI centres, same type."""
    codes = _check_aus(au_codes)
    index = [point for code in codes for point in ROI_CENTRES[code][0]]
    offsets = np.array([[0.0, ROI_CENTRES[code][1]] for code in codes for _ in "ab"])
    left_eye, right_eye = INNER_EYE_CORNERS
    ruler = abs(landmarks[..., left_eye, 0] - landmarks[..., right_eye, 0])[..., None, None]
    if isinstance(landmarks, torch.Tensor):
        offsets = torch.as_tensor(offsets, dtype=landmarks.dtype, device=landmarks.device)
    else:
        offsets = offsets.astype(landmarks.dtype, copy=False)
    return landmarks[..., index, :] + offsets * ruler


def roi_boxes(landmarks, au_codes: Sequence[int] = SYNTH_AUS, size: float = 0.18, unit="face"):
    """Square AU RoI boxes around :func:`roi_centres`.

    landmarks: (..., 68, 2) pixels, numpy or torch. size: the box side, as a fraction of the face
    width ``|p16 - p0|`` (``unit="face"``) or in pixels (``unit="px"``).
    Returns (..., R, 4) boxes ``x1, y1, x2, y2`` in pixels, same type and dtype as ``landmarks``.
    """
    if unit not in ROI_SIZE_UNITS:
        raise ValueError(f"roi size unit must be one of {ROI_SIZE_UNITS}, got {unit!r}")
    if size <= 0:
        raise ValueError(f"roi size must be > 0, got {size}")
    centres = roi_centres(landmarks, au_codes)
    if unit == "face":
        left, right = JAW_ENDS
        width = landmarks[..., right, :] - landmarks[..., left, :]
        half = 0.5 * size * (width**2).sum(-1)[..., None, None] ** 0.5
    else:
        half = 0.5 * size
    lower, upper = centres - half, centres + half
    if isinstance(landmarks, torch.Tensor):
        return torch.cat([lower, upper], dim=-1)
    return np.concatenate([lower, upper], axis=-1)
