"""Building blocks of the learning benchmarks (``benchmarks/block_cs.py``, ``mri.py``,
``beyond_phases.py``, ...): train-or-reuse a config, evaluate a trained network on held-out
images phase by phase, the TV references (:func:`tune_tv` over a weight grid with the LDA
solve, :func:`tv_exact_grid` with the exact PDHG solver :mod:`lda_opt.algorithms.tv_exact`),
and collect metrics into JSON-able records and tables."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch

from ..algorithms.tv_exact import PDHGSettings, tv_exact
from ..learning.config import TrainConfig
from ..learning.net import LDANet
from ..learning.reference import KAPPA_GRID, TVSettings, image_metrics, tv_solve
from ..learning.shipped import CHECKPOINT_DIR, load_lda_net
from ..learning.train import LOG_FILE, STATE_FILE, exported_checkpoint, extends, train
from ..tasks import Measurement

__all__ = ["mean_metrics", "phase_curve", "reconstruct_images", "train_or_reuse", "tune_tv", "tv_exact_grid",
           "tv_record"]


def train_or_reuse(config: TrainConfig, out_dir: str | os.PathLike, quiet: bool = True,
                   shipped: bool = False) -> tuple[LDANet, dict]:
    """The trained network of ``config`` in ``out_dir``: reused when a complete run with the
    same config is there (its exported checkpoint, ``train.select``), resumed when an interrupted one is or when ``config`` appends
    stages to the run there (:func:`~lda_opt.learning.train.extends`), trained otherwise.
    Logged configs are compared after filling in the defaults of fields added since.

    ``shipped=True``: the checkpoint shipped as ``lda_opt/checkpoints/NAME.safetensors``
    (``NAME = config.name``) when it was trained with ``config`` (as its metadata records);
    otherwise as above.  Its log is the training record of its metadata (``budget``).
    Returns ``(net, log)``."""
    if shipped:
        path = CHECKPOINT_DIR / f"{config.name}.safetensors"
        if path.is_file():
            net = load_lda_net(path)
            training = dict(net.checkpoint_metadata.get("training", {}))
            try:
                trained_with = TrainConfig.from_dict(training.pop("config"))
            except (KeyError, TypeError, ValueError):
                trained_with = None
            if trained_with is not None and trained_with.to_dict() == config.to_dict():
                return net, {"name": config.name, "config": config.to_dict(), "budget": training, "complete": True,
                             "checkpoint": str(path)}
    out = Path(out_dir)
    log_path = out / LOG_FILE
    log = json.loads(log_path.read_text(encoding="utf-8")) if log_path.is_file() else None
    try:
        logged = TrainConfig.from_dict(log["config"]) if log is not None else None
    except (KeyError, TypeError, ValueError):
        logged = None
    same = logged is not None and logged.to_dict() == config.to_dict()
    if not (same and log.get("complete")):
        resume = (out / STATE_FILE).is_file() and logged is not None and (same or extends(config, logged))
        log = train(config, out, resume=resume, quiet=quiet)
    return load_lda_net(exported_checkpoint(out, config)), log


def reconstruct_images(net: LDANet, m: Measurement, batch_size: int = 64,
                       phases: int | None = None) -> torch.Tensor:
    """The ``phases``-phase reconstructions of ``m`` as images (blocks reassembled)."""
    outs = []
    n = m.y.shape[0]
    for s in range(0, n, batch_size):
        sub = m.select(torch.arange(s, min(n, s + batch_size)))
        x, _ = net.reconstruct(net.problem(sub.fidelity()), sub.x0, phases)
        outs.append(x)
    return m.to_image(torch.cat(outs))


def mean_metrics(x: torch.Tensor, truth: torch.Tensor) -> dict:
    """Mean and per-image PSNR / SSIM / RelErr (see :func:`lda_opt.learning.reference.image_metrics`)."""
    met = image_metrics(x, truth)
    return {k: sum(v) / len(v) for k, v in met.items()} | {"per_image": met}


def tv_record(m: Measurement, kappa: float, settings: TVSettings) -> tuple[dict, torch.Tensor]:
    """TV with weight ``kappa`` solved on every sample of ``m``: the mean / per-image metrics
    of the reassembled images, the solve statistics (iterations, converged samples, seconds,
    settings), and the images."""
    t0 = time.perf_counter()
    res = tv_solve(m, kappa, settings)
    x = m.to_image(res.x)
    rec = mean_metrics(x, m.to_image(m.truth))
    rec.update(kappa=kappa, iterations_max=int(res.iterations.max()),
               iterations_mean=float(res.iterations.float().mean()), converged=int(res.converged.sum()),
               samples=len(res.reason), seconds=time.perf_counter() - t0, settings=settings.__dict__)
    return rec, x


def tv_exact_grid(m: Measurement, kappas, settings: PDHGSettings | None = None,
                  progress=None, extend: int = 0) -> tuple[list[dict], dict, torch.Tensor]:
    """"The best kappa over a grid" of TV, every weight solved exactly
    (:func:`~lda_opt.learning.reference.tv_exact`, PDHG to its residual tolerance): returns
    ``(grid, best, images of best)``, ``grid`` being the records (mean metrics, ``kappa``,
    iterations, converged samples, mean objective, seconds, settings) without per-image
    metrics, sorted by ``kappa``.  ``progress(kappa, record)`` is called after each solve.

    A best weight at an end of the grid is no optimum.  With ``extend > 0`` the grid grows
    past that end, halving the smallest (doubling the largest) weight, until the best weight
    has a worse neighbour on both sides or ``extend`` weights were added on that side.
    ``best["bracketed"]`` says whether it has (False for a one-weight grid).
    """
    if not kappas:
        raise ValueError("kappas must hold at least one weight")
    if isinstance(extend, bool) or not isinstance(extend, int) or extend < 0:
        raise ValueError(f"extend must be an integer >= 0; got {extend!r}")
    settings = PDHGSettings() if settings is None else settings
    truth = m.to_image(m.truth)
    records: dict[float, tuple[dict, torch.Tensor]] = {}

    def solve(kappa: float) -> None:
        t0 = time.perf_counter()
        res = tv_exact(m.operator, m.y, kappa, m.x0, settings)
        x = m.to_image(res.x)
        rec = mean_metrics(x, truth)
        rec.update(kappa=kappa, iterations_max=int(res.iterations.max()), converged=int(res.converged.sum()),
                   samples=int(res.converged.numel()), objective_mean=float(res.objective.mean()),
                   seconds=time.perf_counter() - t0, settings=settings.__dict__, solver="PDHG (exact TV)")
        records[kappa] = (rec, x)
        if progress is not None:
            progress(kappa, rec)

    for kappa in kappas:
        solve(float(kappa))
    added = {"low": 0, "high": 0}
    while True:
        ks = sorted(records)
        k_best = max(ks, key=lambda k: records[k][0]["psnr"])
        if k_best == ks[0] and len(ks) > 1 and added["low"] < extend:
            added["low"] += 1
            solve(ks[0] / 2)
        elif k_best == ks[-1] and len(ks) > 1 and added["high"] < extend:
            added["high"] += 1
            solve(ks[-1] * 2)
        else:
            break
    best, best_x = records[k_best]
    best["bracketed"] = ks[0] < k_best < ks[-1]
    grid = [{k: v for k, v in records[k][0].items() if k != "per_image"} for k in ks]
    return grid, best, best_x


def phase_curve(net: LDANet, m: Measurement, batch_size: int = 64) -> list[float]:
    """Mean test PSNR after each phase ``k = 0, ..., K`` (``k = 0``: the start ``x0``), from one
    pass through the phases (LDA Fig. 6)."""
    n = m.y.shape[0]
    per_phase: list[list[torch.Tensor]] = [[] for _ in range(net.phases + 1)]
    for s in range(0, n, batch_size):
        sub = m.select(torch.arange(s, min(n, s + batch_size)))
        per_phase[0].append(sub.x0)

        def grab(k, state, rec):
            per_phase[k + 1].append(state.point.x.detach())

        with torch.no_grad():
            net(net.problem(sub.fidelity()), sub.x0, callback=grab)
    truth = m.to_image(m.truth)
    return [mean_metrics(m.to_image(torch.cat(xs)), truth)["psnr"] for xs in per_phase]


#: column formats of :func:`results_table`
_METRIC_FORMAT = {"psnr": ("PSNR", ".2f"), "ssim": ("SSIM", ".4f"), "relerr": ("RelErr", ".4f")}


def results_table(results: dict, metrics: tuple[str, ...], unit: str, baseline: str) -> str:
    """The Markdown tables of ``benchmarks/block_cs.py`` and ``mri.py``: one row per method,
    one column per sampling ratio (``metrics`` in that order, e.g. ``("psnr", "ssim",
    "relerr")``) and the parameter count, then :func:`budget_lines`."""
    ratios = sorted(results, key=float)
    methods: list[str] = []
    for r in ratios:
        methods += [k for k in results[r]["methods"] if k not in methods]
    names = " / ".join(_METRIC_FORMAT[m][0] for m in metrics)
    lines = ["| method | " + " | ".join(f"{round(100 * float(r))}% {names}" for r in ratios) + " | #par |",
             "|" + "---|" * (len(ratios) + 2)]
    for meth in methods:
        cells, pars = [], []
        for r in ratios:
            rec = results[r]["methods"].get(meth)
            if rec is None:
                cells.append("-")
                continue
            cells.append(" / ".join(format(rec[m], _METRIC_FORMAT[m][1]) for m in metrics))
            if "parameters" in rec and f"{rec['parameters']:,}" not in pars:
                pars.append(f"{rec['parameters']:,}")
        lines.append(f"| {meth} | " + " | ".join(cells) + f" | {' / '.join(pars) or 'NA'} |")
    return "\n".join(lines + budget_lines(results, ratios, unit, baseline)) + "\n"


def budget_lines(results: dict, ratios, unit: str, baseline: str) -> list[str]:
    """The "compute budget" Markdown table of ``benchmarks/block_cs.py`` and ``mri.py``.

    ``results[ratio]["methods"][name]`` is a record with a training ``budget`` (trained
    nets), ``iterations_max`` (solved TV) or neither (the ``baseline``, e.g. "one inverse
    FFT"); ``unit`` names the training samples and the solved instances ("blocks", "images").
    """
    lines = ["", "Compute budget (1 CPU thread, shared machine; wall-clock seconds):", "",
             "| ratio | method | budget |", "|---|---|---|"]
    for r in ratios:
        for meth, rec in results[r]["methods"].items():
            if "budget" in rec:
                b = rec["budget"]
                stages = ", ".join(f"K={k}: {e} ep" for k, e in b["stages"])
                desc = (f"{b['train_samples']} training {unit}, {b['epochs']} epochs ({stages}), {b['steps']} Adam "
                        f"steps, {b['seconds']:.0f} s training; test {rec['seconds_test']:.1f} s")
            elif "iterations_max" in rec:
                st = rec["settings"]
                rule = f"eps_tol {st['eps_tol']:g}" if "eps_tol" in st else (
                    f"{'adaptive ' if st.get('adaptive') else ''}PDHG, residual tol {st['tol']:g}")
                desc = (f"kappa={rec['kappa']:g}, max_iter {st['max_iter']}, {rule}: {rec['converged']}/"
                        f"{rec['samples']} {unit} converged, {rec['iterations_max']} iterations max, "
                        f"{rec['seconds']:.0f} s")
                if "bracketed" in rec:
                    desc += "; the best weight " + ("lies inside the grid" if rec["bracketed"] else
                                                    "is at an end of the grid: not bracketed")
            else:
                desc = baseline
            lines.append(f"| {round(100 * float(r))}% | {meth} | {desc} |")
    return lines


#: the default settings of :func:`tune_tv`
_TV_DEFAULT = TVSettings()


def tune_tv(m: Measurement, grid=KAPPA_GRID, settings: TVSettings = _TV_DEFAULT, progress=None) -> dict:
    """Solve TV for every ``kappa`` of ``grid`` and report per-kappa mean PSNR on the images
    of ``m`` (reassembled with :meth:`Measurement.to_image`); ``best`` is the argmax.
    ``progress(kappa, record)`` is called after each solve."""
    rows = []
    truth = m.to_image(m.truth)
    for kappa in grid:
        t0 = time.perf_counter()
        res = tv_solve(m, kappa, settings)
        x = m.to_image(res.x)
        met = image_metrics(x, truth)
        rec = {"kappa": float(kappa), "psnr": sum(met["psnr"]) / len(met["psnr"]),
               "ssim": sum(met["ssim"]) / len(met["ssim"]), "relerr": sum(met["relerr"]) / len(met["relerr"]),
               "per_image": met, "iterations_max": int(res.iterations.max()),
               "converged": int(res.converged.sum()), "samples": len(res.reason), "seconds": time.perf_counter() - t0}
        rows.append(rec)
        if progress is not None:
            progress(kappa, rec)
    best = max(rows, key=lambda r: r["psnr"] if math.isfinite(r["psnr"]) else -math.inf)
    return {"grid": rows, "best": best, "settings": settings.__dict__}
