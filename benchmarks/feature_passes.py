"""CPU seconds per forward / backward pass of FeatureCNN(32, 4) (issue 4's report).

Times ``q(x)`` without a graph (forward) and ``q(x)`` followed by ``sum().backward()``
(forward + backward) on one image of side 33, 128 and 256, real and complex, with
``time.process_time`` (CPU time of this process, so that other load on the machine does not
inflate it) and one torch thread by default.  The backward figure is the difference.

    python benchmarks/feature_passes.py --out benchmarks/results/feature_passes.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lda_opt.nets import FeatureCNN


def _cpu_seconds(fn, reps: int) -> float:
    c0 = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - c0) / reps


def measure(sizes=(33, 128, 256), width=32, depth=4, reps_pixels=1_000_000, seed=0) -> dict:
    """``{"real 33x33": {"forward_s", "backward_s", "forward_backward_s", "reps"}, ...}``."""
    torch.manual_seed(seed)
    out = {}
    for is_complex in (False, True):
        q = FeatureCNN(width=width, depth=depth, complex=is_complex)
        dtype = torch.complex64 if is_complex else torch.float32
        for n in sizes:
            x = torch.randn(1, 1, n, n, dtype=dtype, requires_grad=True)
            reps = max(3, reps_pixels // (n * n))

            def forward(x=x, q=q):
                with torch.no_grad():
                    q(x)

            def forward_backward(x=x, q=q):
                y = q(x)
                (y.real if y.is_complex() else y).sum().backward()

            forward_backward()  # warm-up (allocator, kernels)
            fw = _cpu_seconds(forward, reps)
            fb = _cpu_seconds(forward_backward, reps)
            out[f"{'complex' if is_complex else 'real'} {n}x{n}"] = {
                "forward_s": fw, "backward_s": fb - fw, "forward_backward_s": fb, "reps": reps}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default="benchmarks/results/feature_passes.json", help="JSON file")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    res = measure()
    doc = {"network": "FeatureCNN(width=32, depth=4), batch 1, float32 / complex64",
           "clock": "time.process_time (CPU seconds)", "threads": args.threads,
           "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
           "results": res}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    for k, v in res.items():
        print(f"{k:>16}: forward {v['forward_s'] * 1e3:8.2f} ms   backward {v['backward_s'] * 1e3:8.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
