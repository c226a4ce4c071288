"""``lda-opt complexity``: measured iteration complexity ``N(eps_tol)`` against the bounds.

Runs one algorithm (LDA, MetaLDA or ELDA; ``--candidate lbfgs|nesterov`` for LDA and ELDA's
candidate rules) on one problem (TV-MRI or a small smoothed-ReLU CNN on MRI) over a grid of at
least 6 ``eps_tol`` values spanning at least 2 decades, fits ``b``
in ``N ~ eps_tol^-b`` (least squares in log-log, seeded bootstrap 95% CI), and writes
``complexity.json`` and ``complexity.png`` into ``--out`` (see :mod:`lda_opt.experiments.complexity`).
Every option is validated (ValueError naming the parameter) before any iteration.
"""

from __future__ import annotations

import argparse
import sys

from ..experiments.complexity import ALGORITHMS, PROBLEMS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``lda-opt complexity``."""
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--algorithm", default="elda", help=f"one of {', '.join(ALGORITHMS)} (default elda)"
    )
    parser.add_argument(
        "--problem", default="tv-mri", help=f"one of {', '.join(PROBLEMS)} (default tv-mri)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="16x16 image, 7 eps_tol values 0.1 ... 1e-3, max_iter 2000 (a few minutes on a CPU)",
    )
    parser.add_argument(
        "--candidate",
        default=None,
        help="candidate rule of lda / elda: paper (default), lbfgs or nesterov (theory/candidates.md)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    parser.add_argument(
        "--eps-tol",
        type=float,
        nargs="+",
        default=None,
        help="the eps_tol grid (>= 6 values spanning >= 2 decades)",
    )
    parser.add_argument("--size", type=int, default=None, help="image side H = W")
    parser.add_argument("--weight", type=float, default=None, help="regularization weight kappa")
    parser.add_argument("--max-iter", type=int, default=None, help="iteration cap of the solver")
    parser.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=None, help="bootstrap seed")
    parser.add_argument(
        "--separate-runs",
        action="store_true",
        help="one solver run per eps_tol instead of reading N off one run",
    )
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # test suite


def build_config(args: argparse.Namespace):
    """A validated :class:`~lda_opt.experiments.complexity.ComplexityConfig` from the parsed arguments."""
    from ..experiments.complexity import ComplexityConfig

    scale = "tiny" if args.tiny else ("quick" if args.quick else "full")
    over = {
        "algorithm": args.algorithm,
        "problem": args.problem,
        "separate_runs": bool(args.separate_runs),
    }
    for key, val in (
        ("size", args.size),
        ("weight", args.weight),
        ("max_iter", args.max_iter),
        ("n_boot", args.n_boot),
        ("seed", args.seed),
    ):
        if val is not None:
            over[key] = val
    if args.eps_tol is not None:
        over["eps_tols"] = tuple(args.eps_tol)
    if args.candidate is not None:
        from ..algorithms.candidates import CANDIDATES

        if args.candidate not in CANDIDATES:
            raise ValueError(f"--candidate must be one of {list(CANDIDATES)}; got {args.candidate!r}")
        if args.algorithm not in ("lda", "elda"):
            raise ValueError(f"--candidate applies to --algorithm lda or elda; got {args.algorithm!r}")
        over["solver"] = {"candidate": args.candidate}
    return ComplexityConfig.preset(scale, **over)


#: what ``run_complexity`` writes; an earlier run's folder holding only these is replaced
OUTPUT_FILES = ("complexity.json", "complexity.png")


def run(args: argparse.Namespace) -> int:
    """Run the experiment; 0 on success (the exponent is reported whatever its value)."""
    import torch

    from .._atomic import check_replaceable, staged_dir
    from .._validate import out_dir
    from ..experiments.complexity import run_complexity

    out = out_dir("out", args.out)  # a directory, or creatable: no file on its path
    check_replaceable(out, OUTPUT_FILES)  # an earlier run's folder, or one without other files
    config = build_config(args)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small problems: one intra-op thread, restored afterwards
    try:
        # both files appear at once (a hidden sibling renamed into place): an interrupted
        # run leaves no partial --out folder (issue 15)
        with staged_dir(out, OUTPUT_FILES) as tmp:
            res = run_complexity(config, tmp, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"lda-opt complexity: interrupted; no output written ({out} is as it was before the run)",
              file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(n_threads)
    if not args.quiet:
        b, ci = res["exponent"], res["ci"]
        used = res["fit"]["n"]
        fit = (
            "not fitted (fewer than 2 converged grid values)"
            if b is None
            else f"b = {b:.3f}, 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]"
        )
        print(
            f"{config.algorithm} on {config.problem}: N ~ eps_tol^-b, {fit} "
            f"({used} of {len(res['points'])} grid values converged)"
        )
        print(f"  {'eps_tol':>10} {'N':>7} {'reductions':>10} {'N / bound':>10}")
        for p, bp in zip(res["points"], res["bound_points"]):
            n = f"{p['iterations']}{'' if p['converged'] else '+'}"
            print(f"  {p['eps_tol']:10.3e} {n:>7} {p['reductions']:10d} {bp['ratio']:10.2e}")
        print(
            f"  {res['run']['seconds']:.1f} s; wrote {args.out}/complexity.json and complexity.png"
        )
        censored = res["fit"]["censored"]
        sys.stdout.flush()
        if censored:
            print(
                f"warning: {len(censored)} eps_tol value(s) hit max_iter and were left out of "
                f"the fit (marked +): {censored}",
                file=sys.stderr,
            )
    return 0
