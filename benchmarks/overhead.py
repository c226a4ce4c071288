r"""Solver overhead: the time of an iteration against the time of its passes of ``q``.

The cost model of LDA / MetaLDA / ELDA is the number of forward and backward passes of the
learned feature map ``q`` (DESIGN.md, "Evaluation budget").  This script measures what the
solver adds on top of them.  For every algorithm it runs ``solver.run`` on a learned
denoising problem (``FeatureCNN(width=32, depth=4)``, seeded Xavier weights, 64x64 crops of
the bundled test images, noise 0.1, batch 4, float32) and, inside the run's callback (whose
time ``run`` excludes from ``Result.seconds``), replays right away, in the same process,
the passes ``q`` executed in that iteration on the *bare* CNN:

* a bare forward is ``q(x)`` with ``x.requires_grad_()`` (the solver keeps every forward's
  graph, so the baseline records one too);
* a bare backward is ``torch.autograd.grad(q(x), x, c)`` through a kept graph (an
  input-only vector-Jacobian product, as the solver's).

:class:`~lda_opt.testing.CountedFeatures` (a wrapper the solver cannot tell from ``q``; the
evaluation-budget tests count with it too) logs every pass with its batch size, so the
replay does exactly the same passes.  Reported, per algorithm:

.. math:: \text{ratio} = \frac{\text{Result.seconds}}{\text{seconds of the replayed passes}}

(wall clock; ``ratio_cpu`` is the same with process CPU time, which is less sensitive to
other jobs on a shared machine), and ``ratio_counted``, whose denominator is the Trace's
count of passes (per iteration the maximum over the batch, plus ``init_state``'s one
forward and one backward) times the full-batch per-pass time: it also charges the solver
for the rows that a batched backward carries without needing them.  Solver iteration and
replay alternate, so the load of a shared machine affects both alike.  Target: ratio <= 1.25
on CPU.

Usage::

    python benchmarks/overhead.py                 # CPU, 2 threads, writes benchmarks/results/overhead.{json,png}
    python benchmarks/overhead.py --quick         # smoke run (small, few iterations)
    python benchmarks/overhead.py --device cuda --size 256 --batch 32 --out DIR

The problem, the solvers and the machine facts come from ``_common.py`` (shared with
``batch.py`` and ``race.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from _common import denoise_problem, environment, output_dir, solvers, sync
from torch import nn

import lda_opt as lo
from lda_opt.testing import CountedFeatures

ALGORITHMS = ("lda", "meta-lda", "elda", "gd", "agd")


# ---------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------
def replay(q: nn.Module, x: torch.Tensor, passes: list[tuple[str, int]]) -> dict[str, float]:
    """Run ``passes`` (``("F", rows)``: a forward with its graph recorded, ``("B", rows)``: an
    input vector-Jacobian product through a kept graph) on the bare ``q`` at the first
    ``rows`` samples of ``x``; return the seconds spent in forwards and in backwards and the
    per-pass seconds at the full batch (``nan`` when none was replayed)."""
    dev = x.device
    full = x.shape[0]
    out = {"forward_s": 0.0, "backward_s": 0.0, "forward_full": [], "backward_full": []}
    graphs: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for kind, rows in passes:
        rows = min(rows, full)
        if kind == "B" and rows not in graphs:  # the graph a backward needs, untimed
            leaf = x[:rows].detach().requires_grad_(True)
            g = q(leaf)
            graphs[rows] = (leaf, g, torch.ones_like(g))
        sync(dev)
        t0 = time.perf_counter()
        if kind == "F":
            q(x[:rows].detach().requires_grad_(True))
        else:
            leaf, g, cot = graphs[rows]
            torch.autograd.grad(g, leaf, cot, retain_graph=True)
        sync(dev)
        dt = time.perf_counter() - t0
        out["forward_s" if kind == "F" else "backward_s"] += dt
        if rows == full:
            out["forward_full" if kind == "F" else "backward_full"].append(dt)
    return out


def bare_times(q: nn.Module, x: torch.Tensor, n_forward: int, n_backward: int) -> tuple[float, float]:
    """Seconds of ``n_forward`` bare full-batch forwards and ``n_backward`` bare full-batch
    backwards of ``q`` at ``x`` (see :func:`replay`)."""
    r = replay(q, x, [("F", x.shape[0])] * n_forward + [("B", x.shape[0])] * n_backward)
    return r["forward_s"], r["backward_s"]


def measure(solver: lo.Solver, problem: lo.Problem, x0: torch.Tensor, q: CountedFeatures,
            bare_q: nn.Module) -> dict:
    """Run ``solver`` on ``problem`` (whose features are ``q``) and, in the callback after
    every iteration, replay on ``bare_q`` exactly the passes ``q`` executed in it (same order,
    same batch sizes).  Returns wall and CPU ratios (solver / replay), the counted-pass ratio
    (Trace counts, max over the batch, at the full-batch per-pass time) and the counts."""
    device = x0.device
    acc = {"replay_s": 0.0, "replay_cpu": 0.0, "cb_cpu": 0.0, "F": [], "B": [], "nF": 0, "nB": 0}
    per_iter: list[dict] = []
    last = {"t": None, "n": 0}

    def callback(k, state, rec):
        c0 = time.process_time()
        t_cb = time.perf_counter()
        passes = q.log[last["n"]:]
        r = replay(bare_q, state.point.x, passes)
        c1 = time.process_time()
        acc["replay_cpu"] += c1 - c0
        acc["replay_s"] += r["forward_s"] + r["backward_s"]
        acc["F"] += r["forward_full"]
        acc["B"] += r["backward_full"]
        nf = int(rec["forward"].max()) + (1 if k == 0 else 0)
        nb = int(rec["backward"].max()) + (1 if k == 0 else 0)
        acc["nF"] += nf
        acc["nB"] += nb
        per_iter.append({"forward": nf, "backward": nb, "replay_s": r["forward_s"] + r["backward_s"],
                         "iter_s": None if last["t"] is None else t_cb - last["t"]})
        last["n"] = len(q.log)
        sync(device)
        acc["cb_cpu"] += time.process_time() - c0
        last["t"] = time.perf_counter()

    q.reset()
    sync(device)
    c_start = time.process_time()
    res = solver.run(problem, x0, callback=callback)
    sync(device)
    solver_cpu = time.process_time() - c_start - acc["cb_cpu"]
    d = res.trace.as_dict()
    act = d["active"]
    iters = int(res.iterations.max())
    tF = statistics.mean(acc["F"]) if acc["F"] else math.nan
    tB = statistics.mean(acc["B"]) if acc["B"] else math.nan
    steady = [r["iter_s"] / r["replay_s"] for r in per_iter if r["iter_s"] is not None and r["replay_s"] > 0]
    return {
        "iterations": iters,
        "seconds": res.seconds,
        "seconds_per_iteration": res.seconds / iters,
        "iterations_per_second": iters / res.seconds,
        "replay_seconds": acc["replay_s"],
        "ratio": res.seconds / acc["replay_s"],
        "ratio_cpu": solver_cpu / acc["replay_cpu"],
        "ratio_counted": res.seconds / (acc["nF"] * tF + acc["nB"] * tB),
        "ratio_median_iteration": statistics.median(steady) if steady else math.nan,
        "bare_forward_seconds": tF,
        "bare_backward_seconds": tB,
        "passes_counted_batch": {"forward": acc["nF"], "backward": acc["nB"]},
        "passes_trace_per_sample": {"forward": res.forward.tolist(), "backward": res.backward.tolist()},
        "passes_per_iteration": {"forward": float(d["forward"][act].mean()),
                                 "backward": float(d["backward"][act].mean()),
                                 "linesearch": float(d["linesearch"][act].mean())},
        "executed": q.counts(),
        "reason": res.reason,
    }


def plot(results: dict, path: Path, target: float) -> None:
    """Bar chart of the ratio per algorithm with the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["algorithms"])
    ratios = [results["algorithms"][n]["ratio"] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(names, ratios, color="tab:blue")
    ax.axhline(target, color="tab:red", ls="--", label=f"target {target}")
    ax.axhline(1.0, color="k", lw=0.8)
    for i, r in enumerate(ratios):
        ax.text(i, r, f"{r:.3f}", ha="center", va="bottom", fontsize=8)
    c = results["config"]
    ax.set_ylabel("time / time of bare q passes")
    ax.set_title(f"solver overhead: FeatureCNN({c['width']},{c['depth']}), {c['size']}x{c['size']}, "
                 f"B={c['batch']}, {results['environment']['device']}, {c['threads']} threads", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; returns the result dict (also written as JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iters", type=int, default=12, help="iterations per algorithm")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every algorithm; the median ratio is reported")
    ap.add_argument("--algorithms", nargs="*", default=list(ALGORITHMS), choices=ALGORITHMS)
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the feature map (solver and baseline alike); off by default")
    ap.add_argument("--quick", action="store_true", help="smoke run: 32x32, 3 iterations")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: benchmarks/results, or a temporary folder with --quick)")
    ap.add_argument("--target", type=float, default=1.25)
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.iters, args.rounds = 32, 3, 1
    torch.set_num_threads(args.threads)
    problem, x0, q = denoise_problem(args.batch, args.size, device=args.device)
    bare_q = q.q
    if args.compile:
        bare_q = torch.compile(q.q)
        q.q = bare_q
    out = {"config": {"width": 32, "depth": 4, "size": args.size, "batch": args.batch,
                      "dtype": "float32", "threads": args.threads, "iters": args.iters,
                      "rounds": args.rounds, "compile": args.compile, "problem": "denoise, noise 0.1, weight 0.002",
                      "solvers": {n: s.config() for n, s in solvers(args.iters).items() if n in args.algorithms}},
           "environment": environment(args.device, args.threads), "target": args.target, "algorithms": {}}
    # warm-up (allocator, kernels) outside the measurement
    bare_times(bare_q, x0, 2, 2)
    runs: dict[str, list[dict]] = {n: [] for n in args.algorithms}
    for _ in range(args.rounds):
        for name in args.algorithms:
            runs[name].append(measure(solvers(args.iters)[name], problem, x0, q, bare_q))
    for name, rs in runs.items():
        rs = sorted(rs, key=lambda r: r["ratio"])
        best = dict(rs[len(rs) // 2])
        best["ratio_rounds"] = [r["ratio"] for r in rs]
        out["algorithms"][name] = best
        print(f"{name:9s} ratio {best['ratio']:.3f} (median per-iteration {best['ratio_median_iteration']:.3f}) "
              f"{best['seconds_per_iteration']:.3f} s/it  F/it {best['passes_per_iteration']['forward']:.2f} "
              f"B/it {best['passes_per_iteration']['backward']:.2f}  cpu ratio {best['ratio_cpu']:.3f} "
              f"counted ratio {best['ratio_counted']:.3f}", flush=True)
    out["environment"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out_dir = output_dir(args.out, args.quick)
    (out_dir / "overhead.json").write_text(json.dumps(out, indent=1))
    plot(out, out_dir / "overhead.png", args.target)
    print(f"wrote {out_dir / 'overhead.json'} and overhead.png")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
