"""``aurep synth``: write the procedural synthetic face-video corpus as a prepared dataset."""

from __future__ import annotations

import argparse

from aurep.synth.corpus import SynthSettings, generate_corpus

HELP = "generate the synthetic face-video corpus with exact AU labels"
_DEFAULTS = SynthSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="data/synth", help="output directory (data/synth)")
    parser.add_argument("--identities", type=int, default=_DEFAULTS.identities,
                        help="number of synthetic people (%(default)s)")  # fmt: skip
    parser.add_argument("--clips-per-identity", type=int, default=_DEFAULTS.clips_per_identity,
                        help="clips per person (%(default)s)")  # fmt: skip
    parser.add_argument("--frames", type=int, default=_DEFAULTS.frames,
                        help="frames per clip (%(default)s)")  # fmt: skip
    parser.add_argument("--size", type=int, default=_DEFAULTS.size,
                        help="crop side in pixels, >= 32 (%(default)s)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="seed (%(default)s)")
    parser.add_argument("--difficulty", type=float, default=_DEFAULTS.difficulty,
                        help="0..1: identity confound and nuisance strength (%(default)s)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes (%(default)s)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true",
                        help="replace what aurep wrote in the output directory")  # fmt: skip
    parser.add_argument("--no-flow", action="store_true",
                        help="skip the optical-flow targets (flow.npy)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    root = generate_corpus(
        args.out,
        identities=args.identities,
        clips_per_identity=args.clips_per_identity,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        difficulty=args.difficulty,
        workers=args.workers,
        overwrite=args.overwrite,
        flow=not args.no_flow,
    )
    total = args.identities * args.clips_per_identity * args.frames
    print(f"wrote {total} frames of {args.identities} identities to {root}")
    return 0
