"""Clip dynamics: AU intensity curves (onset-apex-offset events), speech, blinks and gaze.

A clip has T consecutive frames (about 25 fps). Events are prototypical expressions (AUs that
co-occur, such as 6+12 or 1+4+15) or single AUs; each AU of an event follows a smooth
onset-apex-offset curve with its own small timing and apex jitter, and overlapping events combine
by maximum. Unequal event weights give unequal base rates (AU9 and AU14 are rare). Some clips
are speech: AU25/26 open and close the mouth at syllable rate, with unlabeled lip rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aurep.au import SYNTH_AUS
from aurep.synth.identity import AU_INDEX

# (AUs with relative apex, weight). Weights set how often each prototype is drawn.
PROTOTYPES: tuple[tuple[dict[int, float], float], ...] = (
    ({6: 0.85, 12: 1.0}, 0.24),  # smile
    ({6: 1.0, 12: 1.0, 25: 0.9, 26: 0.6}, 0.07),  # laugh
    ({1: 1.0, 2: 0.9}, 0.08),  # brows raised
    ({1: 1.0, 2: 0.9, 25: 0.8, 26: 0.7}, 0.05),  # surprise
    ({4: 1.0, 7: 0.9, 23: 0.8}, 0.07),  # anger
    ({1: 0.9, 4: 0.8, 15: 0.9}, 0.07),  # sadness
    ({15: 0.8, 17: 1.0}, 0.04),  # pout
    ({9: 0.9, 10: 1.0}, 0.04),  # disgust
    ({17: 1.0, 24: 0.9}, 0.08),  # doubt, pressed lips
    ({14: 1.0, 12: 0.4}, 0.04),  # contempt
    ({4: 0.7, 7: 1.0}, 0.06),  # concentration
    ({10: 0.9, 12: 0.5, 25: 0.6}, 0.04),  # upper lip raise while talking
)
# Relative rates of single-AU events, ordered like SYNTH_AUS.
SINGLE_RATES = dict(zip(SYNTH_AUS, (4, 2, 6, 2, 8, 1, 4, 6, 2, 3, 5, 3, 4, 5, 3), strict=True))


@dataclass(frozen=True)
class ClipMotion:
    """Per-frame controls of one clip (T frames).

    intensity: float32 (T, 15) labelled AU intensities 0-5 (SYNTH_AUS order); blink: (T,) 0..1;
    gaze: (T, 2) -1..1; rounding: (T,) 0..1 lip rounding; speech: whether the clip talks.
    """

    intensity: np.ndarray
    blink: np.ndarray
    gaze: np.ndarray
    rounding: np.ndarray
    speech: bool


def event_curve(t: np.ndarray, start: float, onset: float, apex: float, offset: float):
    """0..1 onset-apex-offset curve at frames ``t`` (smoothstep ramps, lengths in frames)."""
    rise = np.clip((t - start) / onset, 0, 1)
    fall = np.clip((t - start - onset - apex) / offset, 0, 1)
    smooth = lambda x: x * x * (3 - 2 * x)  # noqa: E731
    return smooth(rise) * (1 - smooth(fall))


def smooth_track(rng: np.random.Generator, frames: int, amplitude: float, period=(15, 60)):
    """(T,) smooth random motion: two sinusoids of random period (frames) and phase."""
    t = np.arange(frames)
    track = np.zeros(frames)
    for _ in range(2):
        period_f = rng.uniform(*period)
        track += np.sin(2 * np.pi * t / period_f + rng.uniform(0, 2 * np.pi))
    return amplitude * track / 2


def _add_event(intensity, rng, aus: dict[int, float], scale: float) -> None:
    frames = len(intensity)
    t = np.arange(frames)
    start = rng.uniform(-frames / 2, max(frames - 4, 1))
    onset, apex, offset = rng.uniform(3, 10), rng.uniform(4, 26), rng.uniform(3, 12)
    for code, weight in aus.items():
        jitter = rng.uniform(-2, 2)
        peak = min(5.0, scale * weight * rng.uniform(0.75, 1.15))
        curve = peak * event_curve(t, start + jitter, onset, apex, offset)
        column = intensity[:, AU_INDEX[code]]
        np.maximum(column, curve, out=column)


def _speech(rng, frames: int):
    """AU25/AU26 mouth opening at syllable rate and unlabeled lip rounding, (T,) each."""
    t = np.arange(frames)
    opening = np.zeros(frames)
    position = rng.uniform(-4, 2)
    while position < frames:
        length = rng.uniform(4, 8)
        if rng.random() > 0.15:  # else a short pause
            opening = np.maximum(opening, rng.uniform(0.4, 1.0) * event_curve(
                t, position, length * 0.4, 0.5, length * 0.5))  # fmt: skip
        position += length
    lips = np.clip(opening * rng.uniform(3.0, 4.2), 0, 5)
    jaw = np.clip(opening * rng.uniform(1.2, 3.2) - 0.3, 0, 5)
    rounding = np.clip(smooth_track(rng, frames, 1.0, (6, 14)), 0, 1) * (opening > 0.2)
    return lips, jaw, rounding


def _blinks(rng, frames: int) -> np.ndarray:
    blink = np.zeros(frames)
    t = np.arange(frames)
    position = rng.uniform(-20, 60)
    while position < frames:
        blink = np.maximum(blink, event_curve(t, position, 2, 0.5, 3))
        position += rng.uniform(40, 110)
    return blink


def sample_motion(rng: np.random.Generator, frames: int, speech_rate: float = 0.35) -> ClipMotion:
    """Sample one clip's AU curves and per-frame controls. ``speech_rate``: share of clips
    with speech-like AU25/26 motion."""
    intensity = np.zeros((frames, len(SYNTH_AUS)))
    prototypes = [aus for aus, _ in PROTOTYPES]
    weights = np.array([w for _, w in PROTOTYPES])
    singles = np.array(list(SINGLE_RATES.values()), dtype=float)
    for _ in range(2 + min(rng.poisson(1.5), 4)):
        scale = rng.uniform(1.2, 5.0)
        if rng.random() < 0.65:
            aus = prototypes[rng.choice(len(prototypes), p=weights / weights.sum())]
        else:
            aus = {SYNTH_AUS[rng.choice(len(SYNTH_AUS), p=singles / singles.sum())]: 1.0}
        _add_event(intensity, rng, aus, scale)
    # Sub-threshold flicker on a few AUs: visible but labelled absent.
    for index in np.flatnonzero(rng.random(len(SYNTH_AUS)) < 0.2):
        flicker = np.clip(smooth_track(rng, frames, 1.6, (8, 30)), 0, 1.6)
        intensity[:, index] = np.maximum(intensity[:, index], flicker)
    speech = bool(rng.random() < speech_rate)
    rounding = np.zeros(frames)
    if speech:
        lips, jaw, rounding = _speech(rng, frames)
        for code, track in ((25, lips), (26, jaw)):
            column = intensity[:, AU_INDEX[code]]
            np.maximum(column, track, out=column)
    gaze = np.stack([smooth_track(rng, frames, 0.8), smooth_track(rng, frames, 0.5)], 1)
    return ClipMotion(
        intensity=intensity.astype(np.float32),
        blink=_blinks(rng, frames),
        gaze=np.clip(gaze, -1, 1),
        rounding=rounding,
        speech=speech,
    )
