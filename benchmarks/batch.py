r"""Batch efficiency: per-sample time at B = 1, 4, 16, 64, and the cost of per-sample control.

Every sample of a batch is its own problem (its own eps, steps, line search, termination;
finished samples are frozen).  This script solves the first ``B`` of 64 denoising problems
(``FeatureCNN(width=32, depth=4)`` by default, ``--width`` / ``--depth``, with seeded weights, 32x32 crops of the bundled test
images, noise 0.1, float32) as one batch, for B = 1, 4, 16, 64, and every one of the 64
alone, to the certificate, and reports:

* ``per_sample_seconds`` = (batch time) / B, wall clock and process CPU time;
* ``sum_alone`` / ``max_alone``: the time of solving the batch's members one by one, and
  of its slowest member alone;
* ``iterations``: the batch runs exactly as many iterations as its slowest member alone
  (checked: per-sample semantics);
* ``calls``: batched calls of ``q`` (forward, backward) against the slowest member's calls
  alone -- the cost model of an accelerator, where a batched pass costs about one pass;
* ``work_batch_over_sum_alone``: sample-passes of ``q`` executed by the batch over those of
  its members solved one by one (a noise-free proxy of CPU work);
* ``rows``: the sample-passes ``q`` executed against the Trace's count: a batched backward
  runs through every row of the graphs it needs (a candidate's graph holds every row that
  was evaluated with it), so rows that did not need it are carried along.

On a CPU a pass costs in proportion to its rows, so a batch cannot finish before its
slowest member alone; the claim checked there is that the batch costs no more than its
members solved one by one (``cpu_batch <= cpu_sum_alone``).  Timings on a shared machine
are noisy: the CPU-time columns are the ones to compare.

Usage::

    python benchmarks/batch.py                  # CPU, writes benchmarks/results/batch.{json,png}
    python benchmarks/batch.py --quick          # smoke run
    python benchmarks/batch.py --device cuda --size 64
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from _common import denoise_problem, environment, output_dir, solvers, sync

import lda_opt as lo


def timed_run(make, problem: lo.Problem, x0: torch.Tensor, q, repeat: int = 1) -> dict:
    """Run ``make()`` to the certificate ``repeat`` times; the least wall and CPU seconds, the
    iterations, calls and rows of ``q`` (the Trace's counts include ``init_state``)."""
    walls, cpus = [], []
    for _ in range(repeat):
        q.reset()
        sync(x0.device)
        t0, c0 = time.perf_counter(), time.process_time()
        res = make().run(problem, x0)
        sync(x0.device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"wall": min(walls), "cpu": min(cpus),
            "iterations": res.iterations.tolist(), "reason": res.reason,
            "trace_forward": int(res.forward.sum()), "trace_backward": int(res.backward.sum()),
            **q.counts()}


def sub_problem(problem: lo.Problem, index: torch.Tensor) -> lo.Problem:
    """The problems ``index`` of the full batch (same feature map)."""
    return problem.select(index)


def plot(out: dict, path: Path) -> None:
    """Per-sample CPU/wall time against B, with the mean single-sample time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algs = list(out["algorithms"])
    fig, axes = plt.subplots(1, len(algs), figsize=(5.5 * len(algs), 3.8), squeeze=False)
    for ax, name in zip(axes[0], algs):
        rows = out["algorithms"][name]["batches"]
        Bs = [r["B"] for r in rows]
        ax.plot(Bs, [r["per_sample_cpu"] for r in rows], "o-", label="batch, CPU s / sample")
        ax.plot(Bs, [r["per_sample_wall"] for r in rows], "s--", label="batch, wall s / sample")
        ax.plot(Bs, [r["cpu_sum_alone"] / r["B"] for r in rows], "k:", label="alone, mean CPU s")
        ax.plot(Bs, [r["cpu_max_alone"] for r in rows], "r:", label="slowest member alone, CPU s")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size B")
        ax.set_ylabel("seconds")
        ax.set_title(f"{name}: {out['config']['size']}x{out['config']['size']}, {out['environment']['device']}",
                     fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; returns the result dict (also written as JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 4, 16, 64])
    ap.add_argument("--algorithms", nargs="*", default=["lda", "elda"])
    ap.add_argument("--width", type=int, default=32, help="FeatureCNN width")
    ap.add_argument("--depth", type=int, default=4, help="FeatureCNN depth")
    ap.add_argument("--weight", type=float, default=0.05)
    ap.add_argument("--eps0", type=float, default=1e-2)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--eps-tol", type=float, default=2e-3)
    ap.add_argument("--max-iter", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=2, help="runs per measurement; the least time is kept")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--quick", action="store_true", help="smoke run: 16x16, B = 1, 4, FeatureCNN(8, 2)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    width, depth = args.width, args.depth
    if args.quick:
        args.size, args.batches, width, depth = 16, [1, 4], 8, 2
    torch.set_num_threads(args.threads)
    n = max(args.batches)
    problem, x0, q = denoise_problem(n, args.size, weight=args.weight, device=args.device, width=width, depth=depth,
                                     dtype=getattr(torch, args.dtype))
    out = {"config": {"size": args.size, "width": width, "depth": depth, "dtype": args.dtype, "repeat": args.repeat,
                      "batches": args.batches, "weight": args.weight, "noise": 0.1, "eps0": args.eps0,
                      "sigma": args.sigma, "eps_tol": args.eps_tol, "max_iter": args.max_iter},
           "environment": environment(args.device, args.threads), "algorithms": {}}
    for name in args.algorithms:
        def make(name=name):
            return solvers(args.max_iter, eps0=args.eps0, sigma=args.sigma, eps_tol=args.eps_tol)[name]

        # warm-up (allocator, kernel selection), not timed
        timed_run(make, sub_problem(problem, torch.arange(min(4, n), device=x0.device)), x0[:min(4, n)], q)
        # every member alone (reused by every B)
        alone = []
        for i in range(n):
            idx = torch.tensor([i], device=x0.device)
            alone.append(timed_run(make, sub_problem(problem, idx), x0[idx], q, args.repeat))
        rows = []
        for B in args.batches:
            idx = torch.arange(B, device=x0.device)
            r = timed_run(make, sub_problem(problem, idx), x0[idx], q, args.repeat)
            members = alone[:B]
            slowest = max(range(B), key=lambda i: members[i]["cpu"])
            most_calls = max(range(B), key=lambda i: members[i]["forward_calls"] + members[i]["backward_calls"])
            row = {
                "B": B, "wall": r["wall"], "cpu": r["cpu"],
                "per_sample_wall": r["wall"] / B, "per_sample_cpu": r["cpu"] / B,
                "wall_sum_alone": sum(m["wall"] for m in members), "cpu_sum_alone": sum(m["cpu"] for m in members),
                "wall_max_alone": max(m["wall"] for m in members), "cpu_max_alone": members[slowest]["cpu"],
                "iterations_batch": max(r["iterations"]),
                "iterations_max_alone": max(m["iterations"][0] for m in members),
                "iterations_equal_alone": r["iterations"] == [m["iterations"][0] for m in members],
                "calls_batch": {"forward": r["forward_calls"], "backward": r["backward_calls"]},
                "calls_max_alone": {"forward": members[most_calls]["forward_calls"],
                                    "backward": members[most_calls]["backward_calls"]},
                "rows_executed": {"forward": r["forward_rows"], "backward": r["backward_rows"]},
                "rows_counted": {"forward": r["trace_forward"], "backward": r["trace_backward"]},
                "converged": sum(x == "converged" for x in r["reason"]),
            }
            row["cpu_batch_over_sum_alone"] = row["cpu"] / row["cpu_sum_alone"]
            # noise-free work: sample-passes of q executed, batch against members one by one
            alone_rows = sum(m["forward_rows"] + m["backward_rows"] for m in members)
            row["work_batch_over_sum_alone"] = (r["forward_rows"] + r["backward_rows"]) / alone_rows
            row["forward_rows_equal_alone"] = r["forward_rows"] == sum(m["forward_rows"] for m in members)
            row["backward_rows_overhead"] = row["rows_executed"]["backward"] / row["rows_counted"]["backward"] - 1
            rows.append(row)
            print(f"{name:6s} B={B:3d}  per-sample cpu {row['per_sample_cpu']:.3f} s wall {row['per_sample_wall']:.3f} s"
                  f" | cpu batch/sum-alone {row['cpu_batch_over_sum_alone']:.3f}"
                  f" work {row['work_batch_over_sum_alone']:.3f}"
                  f" | iters {row['iterations_batch']} (slowest alone {row['iterations_max_alone']},"
                  f" equal {row['iterations_equal_alone']})"
                  f" | calls F/B {r['forward_calls']}/{r['backward_calls']} vs slowest alone "
                  f"{row['calls_max_alone']['forward']}/{row['calls_max_alone']['backward']}"
                  f" | backward rows +{100 * row['backward_rows_overhead']:.1f}%", flush=True)
        out["algorithms"][name] = {"batches": rows, "alone": alone}
    out["environment"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    d = output_dir(args.out, args.quick)
    (d / "batch.json").write_text(json.dumps(out, indent=1))
    plot(out, d / "batch.png")
    print(f"wrote {d / 'batch.json'} and batch.png")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
