"""Frames per second of ``aurep.synth.generate_corpus`` (rendering + writing, with/without flow).

Usage: python benchmarks/synth_speed.py [--identities 16 --clips-per-identity 8 --frames 40
--size 112 --workers 1 2]. Prints a markdown table; the committed numbers live in
benchmarks/results/synth_speed.md. Wall time includes worker start-up and disk writes; with
one worker the CPU time per frame is also reported (independent of other load on the machine),
and the load average before each run shows how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from aurep.synth import generate_corpus


def measure(workers: int, flow: bool, args: argparse.Namespace) -> tuple[float, float]:
    """(frames per second, CPU ms per frame of this process) of one generate_corpus run into a
    temporary directory."""
    with tempfile.TemporaryDirectory() as root:
        start, cpu = time.perf_counter(), time.process_time()
        generate_corpus(
            os.path.join(root, "synth"),
            identities=args.identities,
            clips_per_identity=args.clips_per_identity,
            frames=args.frames,
            size=args.size,
            workers=workers,
            flow=flow,
            progress=False,
        )
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    frames = args.identities * args.clips_per_identity * args.frames
    return frames / elapsed, 1000 * cpu / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=16)
    parser.add_argument("--clips-per-identity", type=int, default=8)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    total = args.identities * args.clips_per_identity * args.frames
    print(f"{total} frames at {args.size} px; {os.cpu_count()} CPUs; {platform.processor()}")
    print()
    print("| workers | flow | frames/s (wall) | CPU ms/frame (1 worker) | load average before |")
    print("|---|---|---|---|---|")
    for workers in args.workers:
        for flow in (False, True):
            load = os.getloadavg()[0]
            fps, cpu_ms = measure(workers, flow, args)
            cpu = f"{cpu_ms:.2f}" if workers == 1 else "-"
            print(f"| {workers} | {'yes' if flow else 'no'} | {fps:.0f} | {cpu} | {load:.1f} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
