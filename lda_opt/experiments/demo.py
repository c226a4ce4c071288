"""What ``make demo`` runs: the main job of the toolkit, end to end, offline, in minutes.

Command: ``python -m lda_opt.experiments.demo --out demo_out`` (:func:`main`).  Into ``OUT``:

1. ``learned/``: the shipped LDA-Net regularizer for radial 20 % MRI (64 x 64 Shepp-Logan, a
   phantom it was not trained on) solved **to a tolerance**: its K trained phases, then
   ``lda-opt solve``'s default solver (modified ELDA with the L-BFGS candidate, the race
   winner) warm-started at ``eps_K`` until ``sigma eps_k < eps_tol`` (``lda-opt solve
   --checkpoint shipped --eps-tol 0.5``; the stopping rule certifies ``||grad phi_eps|| <
   eps_tol``), with ``convergence.png``; ``learned-check/``: ``lda-opt check`` on that run
   (every theorem inequality on the trace; ``check.json``, ``check.png``);
2. ``complexity/``: ``lda-opt complexity --quick --algorithm elda``: the measured
   ``N(eps_tol)``, the fitted exponent ``b`` of ``N ~ eps_tol^-b`` with its bootstrap 95 % CI,
   against ELDA Thm 4.6's ``O(eps_tol^-3)`` bound curve;
3. ``compare.png``: the learned solve and its K-phase output ``x_K`` beside exact TV at its
   best weight: the TV minimizer of the same measurement by PDHG
   (:func:`lda_opt.algorithms.tv_exact.tv_exact`), ``kappa`` chosen by a golden-section search
   on ``log10 kappa`` maximizing the PSNR against the ground truth (:func:`golden_section_max`;
   an oracle choice, which favours TV); ``tv_search.png`` / ``tv_search.json``: every weight
   tried;
4. ``README.md`` and ``index.html`` linking every figure, ``summary.json``; a 5-line summary
   on the terminal.

Every long step shows a progress bar on a terminal (the solver's, the complexity run's, the
search's).  ``--quick`` (the test suite's) solves a 24 x 24 image with capped iterations.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

__all__ = ["golden_section_max", "main", "run_demo", "tv_best_weight"]

_INVPHI = (math.sqrt(5.0) - 1.0) / 2.0  # 1/phi = 0.618...


def golden_section_max(f, lo: float, hi: float, *, tol: float = 0.02, max_evals: int = 40, bar=None):
    """Maximize a unimodal ``f`` on ``[lo, hi]`` by golden-section search; returns ``(x, f(x),
    evaluations)`` with ``evaluations`` the list of every ``(x, f(x))`` tried, in order.

    The bracket shrinks by ``1/phi`` per evaluation until it is shorter than ``tol`` (or
    ``max_evals`` evaluations); the result is the best point evaluated.  ``bar`` (a tqdm bar
    or None) is advanced once per evaluation."""
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"golden_section_max needs finite lo < hi; got [{lo}, {hi}]")
    if not tol > 0 or max_evals < 2:
        raise ValueError(f"tol must be > 0 and max_evals >= 2; got {tol}, {max_evals}")
    evals: list[tuple[float, float]] = []

    def g(x: float) -> float:
        v = float(f(x))
        if not math.isfinite(v):
            raise ValueError(f"the objective is not finite at {x}: {v}")
        evals.append((x, v))
        if bar is not None:
            bar.update(1)
        return v

    a, b = lo, hi
    c, d = b - _INVPHI * (b - a), a + _INVPHI * (b - a)
    fc, fd = g(c), g(d)
    while b - a > tol and len(evals) < max_evals:
        if fc >= fd:  # the maximum lies in [a, d]
            b, d, fd = d, c, fc
            c = b - _INVPHI * (b - a)
            fc = g(c)
        else:  # in [c, b]
            a, c, fc = c, d, fd
            d = a + _INVPHI * (b - a)
            fd = g(d)
    x, v = max(evals, key=lambda t: t[1])
    return x, v, evals


def _psnr(x: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR of magnitudes with peak 1, as ``lda-opt solve`` reports it."""
    from ..metrics import psnr

    return float(psnr(x.abs(), truth.abs(), data_range=1.0))


def tv_best_weight(inst, lo: float = -5.0, hi: float = -1.0, *, tol: float = 0.02, max_evals: int = 40,
                   pdhg_tol: float = 1e-5, bar=None) -> dict:
    """Exact TV (PDHG) on ``inst``'s measurement at the ``kappa`` maximizing the PSNR against
    the truth: golden section on ``log10 kappa`` in ``[lo, hi]`` (an oracle choice).  Returns
    ``{"kappa", "psnr", "x", "evaluations", "at_edge"}``."""
    from ..algorithms.tv_exact import PDHGSettings, tv_exact

    A, y = inst.problem.fidelity.A, inst.problem.fidelity.y
    settings = PDHGSettings(tol=pdhg_tol)
    found: dict[float, torch.Tensor] = {}

    def score(log_kappa: float) -> float:
        res = tv_exact(A, y, 10.0 ** log_kappa, inst.x0, settings)
        found[log_kappa] = res.x
        return _psnr(inst.to_image(res.x), inst.truth)

    best, value, evals = golden_section_max(score, lo, hi, tol=tol, max_evals=max_evals, bar=bar)
    return {"kappa": 10.0 ** best, "log10_kappa": best, "psnr": value, "x": found[best],
            "evaluations": [{"kappa": 10.0 ** x, "psnr": v} for x, v in evals],
            "at_edge": min(best - lo, hi - best) < 2 * tol}


def _bar(total: int, desc: str, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=True)


def _cli(argv: list[str]) -> int:
    from ..cli import main as cli

    rc = cli(argv)
    if rc != 0:
        raise RuntimeError(f"`lda-opt {' '.join(argv)}` exited with status {rc}")
    return rc


def _x_k(learned: Path, size: int):
    """The K-phase output ``x_K`` of the shipped net on the learned run's measurement (the
    image the phases hand to Algorithm 1), and the run's instance."""
    from ..instances import make_instance
    from ..learning import load_lda_net, task_from_metadata
    from ..tasks import task_at_shape

    res = json.loads((learned / "result.json").read_text(encoding="utf-8"))
    net = load_lda_net(res["problem"]["checkpoint"])
    task = task_at_shape(task_from_metadata(net.checkpoint_metadata), size)
    inst = make_instance("mri", image="shepp-logan", size=size, ratio=0.2, mask="radial", weight=net.weight,
                         features=net.features, dtype=torch.float32, task=task)
    with torch.no_grad():
        x_k, _ = net.reconstruct(inst.problem, inst.x0)
    return x_k, inst, res


def _tv_plot(path: Path, search: dict) -> None:
    from lda_opt._plotting import pyplot

    plt = pyplot()

    ev = sorted(search["evaluations"], key=lambda e: e["kappa"])
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.semilogx([e["kappa"] for e in ev], [e["psnr"] for e in ev], "o-", ms=4)
    ax.axvline(search["kappa"], color="gray", ls=":")
    ax.set_xlabel("TV weight kappa")
    ax.set_ylabel("PSNR of the exact TV minimizer (dB)")
    ax.set_title(f"golden-section search: best kappa {search['kappa']:.3g} ({search['psnr']:.2f} dB)", fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


_FIGURES = [
    ("learned/convergence.png", "Learned regularizer solved to tolerance: phi, eps and ||grad phi_eps|| per iteration"),
    ("learned/recon.png", "Learned solve: ground truth, zero filling, result, error"),
    ("learned-check/check.png", "lda-opt check: the monotone quantity of the theorem on the trace"),
    ("complexity/complexity.png", "Iteration complexity N(eps_tol): fitted exponent with 95% CI vs ELDA Thm 4.6"),
    ("compare.png", "Learned (to tolerance and K phases) vs exact TV at its best weight"),
    ("tv_search.png", "The golden-section search for TV's best weight (oracle: PSNR against the truth)"),
]


def _index(out: Path, lines: list[str], commands: list[str]) -> None:
    """``README.md`` and ``index.html`` of ``out``: the summary, every figure, the commands."""
    import html

    md = ["# lda_opt demo", "", *[f"- {ln}" for ln in lines], "", "## Figures", ""]
    for rel, caption in _FIGURES:
        md += [f"### {caption}", "", f"![{caption}]({rel})", ""]
    md += ["## Reproduce", "", "```bash", *commands, "```", "",
           ("Files: `learned/` (result.json, trace.csv, x.npy), `learned-check/check.json`, "
            "`complexity/complexity.json`, `compare.json`, `tv_search.json`, `summary.json`."), ""]
    (out / "README.md").write_text("\n".join(md), encoding="utf-8")
    body = ["<h1>lda_opt demo</h1>", "<ul>", *[f"<li>{html.escape(ln)}</li>" for ln in lines], "</ul>"]
    for rel, caption in _FIGURES:
        body += [f"<h3>{html.escape(caption)}</h3>", f'<a href="{rel}"><img src="{rel}" style="max-width:100%"></a>']
    body += ["<h2>Reproduce</h2>", "<pre>" + html.escape("\n".join(commands)) + "</pre>"]
    (out / "index.html").write_text("<!doctype html>\n<html><head><meta charset='utf-8'><title>lda_opt demo</title>"
                                    "</head><body>\n" + "\n".join(body) + "\n</body></html>\n", encoding="utf-8")


def _commands(out: Path, size: int, quick: bool) -> dict[str, list[str]]:
    """The three ``lda-opt`` command lines of the demo (``solve``, ``check``, ``complexity``)."""
    return {
        "solve": ["solve", "--problem", "mri", "--image", "shepp-logan", "--size", str(size), "--ratio", "0.2",
                  "--mask", "radial", "--checkpoint", "shipped", "--eps-tol", "0.5",
                  *(["--max-iter", "10"] if quick else []), "--out", str(out / "learned")],
        "check": ["check", str(out / "learned"), "--out", str(out / "learned-check")],
        "complexity": ["complexity", "--algorithm", "elda", "--problem", "tv-mri", "--tiny" if quick else "--quick",
                       "--out", str(out / "complexity")],
    }


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _tv_step(out: Path, size: int, psnr_x0: float, quick: bool, quiet: bool) -> dict:
    """Exact TV at its best weight on the learned run's measurement; writes the search's
    figure and JSON."""
    from ..instances import make_instance

    tv_inst = make_instance("mri", image="shepp-logan", size=size, ratio=0.2, mask="radial", dtype=torch.float64)
    if abs(_psnr(tv_inst.x0, tv_inst.truth) - psnr_x0) > 1e-3:
        raise RuntimeError("the TV instance's zero filling differs from the learned run's (another mask)")
    evals = 5 if quick else 24
    bar = _bar(evals, "TV weight (golden section)", quiet)
    search = tv_best_weight(tv_inst, tol=0.3 if quick else 0.02, max_evals=evals, bar=bar)
    if bar is not None:
        bar.close()
    _tv_plot(out / "tv_search.png", search)
    (out / "tv_search.json").write_text(json.dumps({k: v for k, v in search.items() if k != "x"}, indent=2) + "\n",
                                        encoding="utf-8")
    return search


def _solver_label(solver: dict) -> str:
    """``"ELDA + lbfgs candidate"`` / ``"LDA"``: the solver of a ``result.json``."""
    name, cand = solver["name"].upper(), solver["params"].get("candidate", "paper")
    return name if cand == "paper" else f"{name} + {cand} candidate"


def _lines(out: Path, summary: dict, seconds: float) -> list[str]:
    """The 5-line terminal summary (also the index's)."""
    le, ch, cx, tv = summary["learned"], summary["check"], summary["complexity"], summary["tv"]
    if le["reason"] == "converged":
        stop = (f"converged at eps_tol {le['eps_tol']:g}, certificate ||grad phi_eps|| "
                f"{le['grad_norm_final']:.3g} < eps_tol")
    else:
        stop = f"stopped by {le['reason']} before eps_tol {le['eps_tol']:g} (||grad phi_eps|| {le['grad_norm_final']:.3g})"
    return [
        (f"learned q (shipped MRI LDA-Net, {le['phases']} phases + {le['iterations']} {le['solver']} iterations): "
         f"{stop}, "
         f"PSNR {le['psnr_x0']:.2f} -> {le['psnr']:.2f} dB (x_K after the phases: {le['psnr_K']:.2f} dB)"),
        (f"lda-opt check: {'OK' if ch['ok'] else 'FAILED'}, {ch['violations']} violation(s) in "
         f"{ch['checked']} inequalities"),
        (f"complexity (ELDA, quick): N ~ eps_tol^-b with b = {cx['exponent']:.2f}, 95% CI "
         f"[{cx['ci'][0]:.2f}, {cx['ci'][1]:.2f}]; Thm 4.6 bounds it by O(eps_tol^-3)"),
        (f"exact TV at its best weight kappa = {tv['kappa']:.3g} (golden section on the truth PSNR, oracle): "
         f"{tv['psnr']:.2f} dB vs learned {le['psnr']:.2f} dB (to tolerance), {le['psnr_K']:.2f} dB (K phases)"),
        f"figures: {out / 'README.md'} and {out / 'index.html'} ({seconds:.0f} s)",
    ]


def run_demo(out: str | Path, *, quick: bool = False, quiet: bool = False) -> dict:
    """Run the demo into ``out`` (see the module docstring); returns ``summary.json``'s
    content.  ``quick``: a 24 x 24 image, the learned solve capped at 10 iterations, the
    complexity run's test size, a coarse search (the test suite's)."""
    from .compare import compare_runs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    q = ["--quiet"] if quiet else []
    size = 24 if quick else 64
    cmd = _commands(out, size, quick)
    if not quiet:
        print("[1/3] the shipped MRI regularizer, solved to tolerance, and lda-opt check", flush=True)
    _cli([*cmd["solve"], *q])
    ok = _cli_check(cmd["check"], quiet)
    learned, report = _read(out / "learned" / "result.json"), _read(out / "learned-check" / "check.json")
    if not quiet:
        print("[2/3] iteration complexity of ELDA against Thm 4.6", flush=True)
    _cli([*cmd["complexity"], *q])
    cx = _read(out / "complexity" / "complexity.json")
    if not quiet:
        print("[3/3] exact TV at its best weight (golden section), and the comparison figure", flush=True)
    x_k, inst, _ = _x_k(out / "learned", size)
    psnr_k = _psnr(x_k, inst.truth)
    search = _tv_step(out, size, learned["psnr_x0"], quick, quiet)
    if abs(psnr_k - learned["problem"]["phases"]["psnr_K"]) > 1e-3:
        raise RuntimeError(f"x_K rebuilt here ({psnr_k:.4f} dB) is not the solve's ({learned['problem']['phases']['psnr_K']:.4f} dB)")

    def mag(t):
        return t.detach().abs()[0, 0].double().numpy()

    cmp = compare_runs([out / "learned"], out / "compare.png", extra=[
        (f"LDA-Net, K = {learned['problem']['phases']['K']} phases only", mag(x_k), psnr_k),
        (f"TV exact (PDHG), best kappa {search['kappa']:.2g}", mag(search["x"]), search["psnr"])])
    summary = {
        "learned": {"iterations": learned["iterations"], "reason": learned["reason"],
                    "solver": _solver_label(learned["solver"]),
                    "eps_tol": learned["solver"]["params"]["eps_tol"], "grad_norm_final": learned["grad_norm_final"],
                    "psnr": learned["psnr"], "psnr_K": psnr_k, "psnr_x0": learned["psnr_x0"],
                    "phases": learned["problem"]["phases"]["K"], "seconds": learned["seconds"]},
        "check": {"ok": ok, "checked": sum(report["counts"].values()), "violations": len(report["violations"])},
        "complexity": {"algorithm": "elda", "exponent": cx["fit"]["exponent"], "ci": cx["fit"]["ci"],
                       "bound": cx["bound"]["label"], "bound_equation": cx["bound"]["equation"],
                       "theorem_exponent": 3.0},
        "tv": {k: v for k, v in search.items() if k not in ("x", "evaluations")},
        "compare": cmp, "quick": quick,
    }
    for v in (learned["psnr"], psnr_k, search["psnr"]):
        if not math.isfinite(v):
            raise RuntimeError("a non-finite PSNR in the demo")
    summary["seconds"] = time.perf_counter() - t0
    summary["lines"] = _lines(out, summary, summary["seconds"])
    commands = [f"lda-opt {' '.join(c)}" for c in cmd.values()]
    commands.append(f"python -m lda_opt.experiments.demo --out {out}{' --quick' if quick else ''}")
    _index(out, summary["lines"], commands)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if not quiet:
        print("\n".join(summary["lines"]))
    return summary


def _cli_check(argv: list[str], quiet: bool) -> bool:
    """``lda-opt check``: True when every inequality holds (exit 0), False for exit 1."""
    from ..cli import main as cli

    rc = cli(argv) if not quiet else _silently(cli, argv)
    if rc not in (0, 1):
        raise RuntimeError(f"`lda-opt {' '.join(argv)}` exited with status {rc}")
    return rc == 0


def _silently(fn, argv):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(argv)


def main(argv: list[str] | None = None) -> int:
    """The command line of ``make demo``."""
    p = argparse.ArgumentParser(prog="python -m lda_opt.experiments.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
    p.add_argument("--quick", action="store_true", help="a 24 x 24 image and capped work (seconds; for tests)")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    run_demo(args.out, quick=args.quick, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
