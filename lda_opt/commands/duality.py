"""``lda-opt duality``: primal ST-CNN vs its convex dual (dual-st-cnn-2024), with an honest gap.

Writes ``duality.json``, ``duality.npz`` and PNG figures into ``--out``.  Every option is
validated (ValueError naming the parameter) before any computation starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .._atomic import check_replaceable, staged_dir
from .._validate import out_dir
from ..dual.primal import INITS, OPTIMIZERS
from ..experiments.duality import DualityConfig, run_duality


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--quick", action="store_true",
                        help="small instance, under 2 minutes on a CPU")
    parser.add_argument("--noise", type=float, default=0.25,
                        help="Gaussian noise sigma (Table I uses 0.25, 0.5, 0.75)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--n-train", type=int, default=None, help="training digits (8x8)")
    parser.add_argument("--n-test", type=int, default=None, help="test digits (8x8)")
    parser.add_argument("--filters", type=int, default=None, help="K, number of m x m filters")
    parser.add_argument("--filter-size", type=int, default=None, help="m (odd)")
    parser.add_argument("--lam", type=float, default=None, help="ST threshold lambda")
    parser.add_argument("--beta", type=float, default=None, help="weight decay beta")
    parser.add_argument("--epochs", type=int, default=None, help="primal training epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="primal seeds")
    parser.add_argument("--optimizers", nargs="+", default=None,
                        help=f"subset of {', '.join(OPTIMIZERS)}")
    parser.add_argument("--inits", nargs="+", default=None, help=f"subset of {', '.join(INITS)}")
    parser.add_argument("--patterns", type=int, default=None,
                        help="number of random u-bar sampled for the patterns")
    parser.add_argument("--u-scale", type=float, default=None,
                        help="standard deviation of the sampled u-bar")
    parser.add_argument("--u-scale-sweep", type=float, nargs="*", default=None,
                        help="multiples of --u-scale at which (22) is re-solved to show its "
                             "dependence on |u-bar| (none given: no sweep)")
    parser.add_argument("--dual-method", default=None, help="torch solver: admm (default) or adam")
    parser.add_argument("--dual-iters", type=int, default=None, help="torch dual iterations")
    parser.add_argument("--cvxpy-solver", default=None, help="CLARABEL, SCS or none")


def build_config(args: argparse.Namespace) -> DualityConfig:
    """Turn parsed arguments into a validated :class:`DualityConfig` (ValueError if bad)."""
    base = DualityConfig.quick() if args.quick else DualityConfig()
    primal_over = {k: v for k, v in {
        "n_filters": args.filters, "lam": args.lam, "beta": args.beta, "epochs": args.epochs,
    }.items() if v is not None}
    torch_over = {k: v for k, v in {
        "method": args.dual_method, "iters": args.dual_iters}.items() if v is not None}
    over: dict = {"noise": args.noise}
    if primal_over:
        over["primal"] = dataclasses.replace(base.primal, **primal_over)
    if torch_over:
        over["torch_dual"] = dataclasses.replace(base.torch_dual, **torch_over)
    for key, val in (("n_train", args.n_train), ("n_test", args.n_test),
                     ("filter_size", args.filter_size), ("n_samples", args.patterns),
                     ("u_scale", args.u_scale)):
        if val is not None:
            over[key] = val
    if args.u_scale_sweep is not None:
        over["u_scale_sweep"] = tuple(args.u_scale_sweep)
    if args.seeds is not None:
        over["seeds"] = tuple(args.seeds)
    if args.optimizers is not None:
        over["optimizers"] = tuple(args.optimizers)
    if args.inits is not None:
        over["inits"] = tuple(args.inits)
    if args.cvxpy_solver is not None:
        solver = args.cvxpy_solver.upper()
        over["cvxpy_solver"] = None if solver == "NONE" else solver
        if solver not in ("NONE", "CLARABEL", "SCS"):
            raise ValueError(f"cvxpy-solver must be CLARABEL, SCS or none; got {args.cvxpy_solver!r}")
    return dataclasses.replace(base, **over)


#: what ``run_duality`` writes; an earlier run's folder holding only these is replaced
OUTPUT_FILES = ("duality.json", "duality.npz", "objective_vs_epoch.png", "objective_by_init.png",
                "primal_vs_dual.png", "denoised.png")


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    out = out_dir("out", args.out)  # a directory, or creatable: no file on its path
    check_replaceable(out, OUTPUT_FILES)  # before any work
    progress = (not args.quiet) and sys.stdout.isatty()
    import torch

    # small dense ops: one intra-op thread avoids oversubscription; restored afterwards
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # written in a hidden sibling and renamed into place at the end: a run that fails or
        # is interrupted half-way leaves no partial --out folder (issue 15)
        with staged_dir(out, OUTPUT_FILES) as tmp:
            res = run_duality(config, tmp, progress=progress)
    except KeyboardInterrupt:
        print(f"lda-opt duality: interrupted; no output written ({out} is as it was before the run)",
              file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(n_threads)
    summary = {k: res[k] for k in ("primal_best", "dual", "primal_at_reconstruction", "gap",
                                   "certified_lower_bound", "runtime_seconds")}
    if not args.quiet:
        print(json.dumps(summary, indent=2))
        print(f"wrote {out}/duality.json, duality.npz and PNG figures")
    return 0
