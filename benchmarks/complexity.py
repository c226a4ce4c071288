"""LDA, MetaLDA and ELDA side by side, with LDA's and ELDA's L-BFGS candidate rule
(``lda-lbfgs``, ``elda-lbfgs``): measured iteration complexity ``N(eps_tol)``.

For each problem (``tv-mri``, ``cnn-mri``) runs :func:`lda_opt.experiments.complexity.run_complexity` for
every algorithm with the same problem, ``eps_tol`` grid (0.1 ... 1e-3) and continuation
(``sigma = 1``, ``eps0 = 0.1``: the preset's ``EXERCISED``, where the reduction test binds and
segments are longer than 1), and writes

* ``complexity_<problem>.json``: ``{"algorithms": {name: complexity.json dict}, "summary":
  {name: {exponent, ci, max_ratio_to_bound, censored, segment_lengths, segments_longer_than_1,
  check_ok, passes, seconds}}, "command": ...}``;
* ``complexity_<problem>.png``: one column per algorithm; top row ``N`` against ``1/eps_tol``
  with the fit, the slope-3 reference and the certified bound; bottom row segment lengths with
  their bound.

Usage::

    python benchmarks/complexity.py                      # both problems, full scale
    python benchmarks/complexity.py --problem tv-mri --quick
    python benchmarks/complexity.py --out /tmp/cx --algorithms lda elda

Every setting is recorded in the JSON (the per-algorithm ``config`` and ``solver``).  The
``--quick`` smoke mode uses the 16x16 preset (``max_iter = 2000``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from lda_opt.experiments.complexity import (
    PROBLEMS,
    ComplexityConfig,
    plot_complexity,
    run_complexity,
)

#: the competitors: the papers' algorithms and LDA / ELDA with the L-BFGS candidate rule
#: (``theory/candidates.md``), each ``name -> (algorithm, solver overrides)``
ALGORITHMS = {
    "lda": ("lda", {}),
    "lda-lbfgs": ("lda", {"candidate": "lbfgs"}),
    "meta-lda": ("meta-lda", {}),
    "elda": ("elda", {}),
    "elda-lbfgs": ("elda", {"candidate": "lbfgs"}),
}

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", default="all", help=f"one of {', '.join(PROBLEMS)}, or all")
    p.add_argument(
        "--algorithms",
        nargs="+",
        default=list(ALGORITHMS),
        help=f"subset of {', '.join(ALGORITHMS)}",
    )
    p.add_argument("--quick", action="store_true", help="16x16 smoke mode")
    p.add_argument("--max-iter", type=int, default=None, help="iteration cap per run")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def run_problem(
    problem: str, algorithms: list[str], scale: str, max_iter: int | None, out: Path, progress: bool
) -> dict:
    """Run every algorithm on ``problem``; write the JSON and the side-by-side PNG."""
    results, summary = {}, {}
    for alg in algorithms:
        algorithm, solver = ALGORITHMS[alg]
        changes = {"algorithm": algorithm, "problem": problem, "solver": solver}
        if max_iter is not None:
            changes["max_iter"] = max_iter
        cfg = ComplexityConfig.preset(scale, **changes)
        t0 = time.perf_counter()
        res = run_complexity(cfg, progress=progress)
        results[alg] = res
        summary[alg] = {
            "exponent": res["exponent"],
            "ci": res["ci"],
            "fit_points": res["fit"]["n"],
            "censored": res["fit"]["censored"],
            "iterations": [p["iterations"] for p in res["points"]],
            "ratio_to_bound": [bp["ratio"] for bp in res["bound_points"]],
            "max_ratio_to_bound": max(bp["ratio"] for bp in res["bound_points"]),
            "segment_violations": res["segments"]["violations"],
            "segment_lengths": res["segments"]["lengths"],
            "segments_longer_than_1": sum(1 for n in res["segments"]["lengths"] if n > 1),
            "check_ok": res["check"]["ok"],
            "passes": res["run"]["forward"][-1] + res["run"]["backward"][-1],
            "seconds": time.perf_counter() - t0,
        }
        if progress or not sys.stdout.isatty():
            print(
                f"{problem} {alg}: b = {res['exponent']}, CI {res['ci']}, "
                f"N = {summary[alg]['iterations']}, {summary[alg]['seconds']:.1f} s",
                flush=True,
            )
    doc = {
        "problem": problem,
        "scale": scale,
        "algorithms": results,
        "summary": summary,
        "command": " ".join(["python", "benchmarks/complexity.py", *sys.argv[1:]]),
    }
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if scale == "quick" else ""
    (out / f"complexity_{problem}{suffix}.json").write_text(json.dumps(doc, indent=2))
    _figure(results, out / f"complexity_{problem}{suffix}.png", problem)
    return doc


def _figure(results: dict, path: Path, problem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(2, n, figsize=(5.2 * n, 8.2), squeeze=False)
    for j, (alg, res) in enumerate(results.items()):
        c = res["config"]
        plot_complexity(
            res,
            axes=(axes[0, j], axes[1, j]),
            title=f"{alg}: {problem} {c['size']}x{c['size']}, kappa={c['weight']:g}",
        )
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.06, top=0.96, wspace=0.25, hspace=0.22)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problems = list(PROBLEMS) if args.problem == "all" else [args.problem]
    for p in problems:
        if p not in PROBLEMS:
            raise SystemExit(f"--problem must be one of {list(PROBLEMS)} or all; got {p!r}")
    for a in args.algorithms:
        if a not in ALGORITHMS:
            raise SystemExit(f"--algorithms must be a subset of {list(ALGORITHMS)}; got {a!r}")
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for p in problems:
            run_problem(
                p,
                args.algorithms,
                "quick" if args.quick else "full",
                args.max_iter,
                Path(args.out),
                progress=not args.quiet,
            )
    finally:
        torch.set_num_threads(n_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
