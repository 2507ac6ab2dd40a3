"""Procedural synthetic face-video corpus with exact AU labels (``aurep synth``)."""

from aurep.synth.corpus import SynthSettings, generate_corpus, identity_of, render_clip
from aurep.synth.identity import Identity, sample_identity
from aurep.synth.render import FaceRenderer

__all__ = [
    "FaceRenderer",
    "Identity",
    "SynthSettings",
    "generate_corpus",
    "identity_of",
    "render_clip",
    "sample_identity",
]
