"""What the benchmark scripts share (imported as ``_common``: a script's own folder is the
first entry of ``sys.path``).

* the solver-benchmark pieces of ``overhead.py``, ``batch.py`` and ``race.py``:
  :func:`feature_cnn`, :func:`natural_crops`, :func:`denoise_problem`, :func:`solvers`,
  :func:`sync`, :func:`environment`, :func:`output_dir` (passes are counted by
  :class:`lda_opt.testing.CountedFeatures`);
* the LDA-Net reconstruction benchmarks ``block_cs.py`` and ``mri.py``: their command-line
  options (:func:`reconstruction_parser`, :func:`reconstruction_args`), the smoke-run
  configs (:func:`quick_config`), the TV references (:func:`tv_references`) and the
  JSON / Markdown output (:func:`write_results`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch

import lda_opt as lo
from lda_opt.algorithms.tv_exact import PDHGSettings
from lda_opt.experiments.learning import tune_tv, tv_exact_grid, tv_record
from lda_opt.learning.datasets import training_data
from lda_opt.learning.reference import TVSettings
from lda_opt.nets import FeatureCNN, xavier_init_
from lda_opt.tasks import DenoiseTask
from lda_opt.testing import CountedFeatures

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = ROOT / "configs"


# ---------------------------------------------------------------------------------------
# solver benchmarks: problems, solvers, machine facts
# ---------------------------------------------------------------------------------------
def feature_cnn(width: int = 32, depth: int = 4, seed: int = 0, complex: bool = False,
                dtype: torch.dtype = torch.float32, device: str = "cpu") -> FeatureCNN:
    """A seeded, Xavier-initialized ``FeatureCNN`` (the paper's d=32, 4 layers by default)."""
    q = FeatureCNN(in_channels=1, width=width, depth=depth, complex=complex)
    xavier_init_(q, generator=torch.Generator().manual_seed(seed))
    return q.to(device=device, dtype=dtype)


def natural_crops(batch: int, size: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``batch`` size x size crops of the bundled test images (camera, astronaut, ...) at 256x256,
    seeded; shape (batch, 1, size, size), values in [0, 1]."""
    from lda_opt.data import images

    imgs = torch.cat([images.load_image(n, size=256, dtype=torch.float64) for n in images.TEST_IMAGES])
    gen = torch.Generator().manual_seed(seed)
    out = []
    for b in range(batch):
        i = int(torch.randint(len(imgs), (1,), generator=gen))
        t, s = (int(v) for v in torch.randint(256 - size + 1, (2,), generator=gen))
        out.append(imgs[i, :, t:t + size, s:s + size])
    return torch.stack(out).to(dtype)


def denoise_problem(batch: int = 4, size: int = 64, noise: float = 0.1, weight: float = 0.002,
                    dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0,
                    width: int = 32, depth: int = 4) -> tuple[lo.Problem, torch.Tensor, CountedFeatures]:
    """Denoising ``1/2||x - y||^2 + weight ||q(x)||_{2,1}`` of :func:`natural_crops` (the
    :class:`~lda_opt.tasks.DenoiseTask`, noise seed ``seed + 1``) with a seeded random
    FeatureCNN ``q`` (wrapped in :class:`~lda_opt.testing.CountedFeatures`); returns the
    problem, ``x0 = y`` and the wrapper."""
    clean = natural_crops(batch, size, seed, torch.float64)
    y = DenoiseTask(noise=noise, noise_seed=seed + 1).measure(clean).y.to(dtype).to(device)
    q = CountedFeatures(feature_cnn(width, depth, seed, dtype=dtype, device=device))
    return lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), q, weight), y.clone(), q


def solvers(max_iter: int, eps0: float = 1e-2, sigma: float = 1e3, eps_tol: float = 1e-5) -> dict[str, lo.Solver]:
    """Every algorithm with the same continuation (``eps0``, ``gamma = 0.9``, ``sigma``,
    ``eps_tol``) and its own step rules at their defaults, except MetaLDA's steps
    (``alpha = tau = 0.5``: the paper's 0.01 is for its un-normalized MRI data)."""
    common = {"eps0": eps0, "sigma": sigma, "eps_tol": eps_tol, "max_iter": max_iter, "gamma": 0.9}
    return {
        "lda": lo.LDA(**common),
        "meta-lda": lo.MetaLDA(**common, alpha=0.5, tau=0.5),
        "elda": lo.ELDA(**common),
        "gd": lo.GD(**common),
        "agd": lo.AGD(**common),
    }


def sync(device: torch.device | str) -> None:
    """Wait for the device (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def environment(device: str, threads: int) -> dict:
    """Machine facts recorded with every result (timings are only comparable within one)."""
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
           "threads": threads, "cpu_count": os.cpu_count(), "platform": platform.platform(),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}
    try:
        env["loadavg_start"] = list(os.getloadavg())
    except OSError:  # pragma: no cover - not on every OS
        pass
    if torch.device(device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


def output_dir(out: Path | None, quick: bool) -> Path:
    """``out`` (created), else ``benchmarks/results`` -- or a fresh temporary folder for a
    ``--quick`` smoke run, so that it never overwrites the recorded results."""
    if out is None:
        if quick:
            import tempfile

            return Path(tempfile.mkdtemp(prefix="lda_opt_bench_"))
        out = RESULTS
    out.mkdir(parents=True, exist_ok=True)
    return out


# ---------------------------------------------------------------------------------------
# LDA-Net reconstruction benchmarks (block_cs.py, mri.py)
# ---------------------------------------------------------------------------------------
#: the row of the quality bar: TV's exact minimizer (PDHG) at the best weight of the grid on test
TV_EXACT = "TV exact (PDHG), best kappa of the grid on test"


def pct(r: float) -> int:
    """A ratio as a whole percentage (0.25 -> 25)."""
    return round(100 * r)


def log(msg: str) -> None:
    """Progress on stderr."""
    print(msg, file=sys.stderr, flush=True)


def quick_config(cfg, batch_size: int, **sections):
    """The smoke-run version of a training config: tiny network (``net.init = "tv"`` needs
    width >= 4), 3 phases, one epoch per stage, one learning rate for every stage, plus the
    script's own ``sections`` (data sizes, MRI image shape)."""
    return cfg.with_overrides(
        name=cfg.name + "_quick",
        net={"width": 4, "depth": 2},
        train={"phases": 3, "first_phases": 1, "phase_step": 2, "epochs_first": 1, "epochs_stage": 1,
               "stage_lr": None, "batch_size": batch_size},
        **sections,
    )


def reconstruction_parser(description: str, ratios: list[float]) -> argparse.ArgumentParser:
    """The options both reconstruction benchmarks take (the script adds its own)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--ratios", type=float, nargs="+", default=ratios)
    p.add_argument("--runs", default=str(ROOT / "build" / "runs"), help="training directories (reused / resumed)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--tv-coarse-iter", type=int, default=300)
    p.add_argument("--tv-final-iter", type=int, default=3000)
    p.add_argument("--tv-tol", type=float, default=1e-3)
    p.add_argument("--grid", type=float, nargs="+", default=None,
                   help="TV weights kappa to try (default: GRID)")
    p.add_argument("--pdhg-max-iter", type=int, default=20000, help="exact TV (PDHG): iteration cap")
    p.add_argument("--shipped", action="store_true",
                   help="evaluate the shipped checkpoint of the LDA-Net config when it was trained with it")
    p.add_argument("--grid-extend", type=int, default=6,
                   help="exact TV: weights the grid may grow by past an end holding the best weight")
    p.add_argument("--pdhg-tol", type=float, default=1e-6, help="exact TV (PDHG): residual tolerance")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny networks, one epoch per stage, few TV iterations")
    p.add_argument("--threads", type=int, default=1)
    return p


def reconstruction_args(p: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse ``argv``, check ``--ratios`` and apply the smoke-run iteration counts."""
    args = p.parse_args(argv)
    for r in args.ratios:
        if not 0 < r < 1:
            p.error(f"--ratios must be in (0, 1); got {r}")
    if args.quick:
        args.pdhg_max_iter, args.grid_extend = 500, min(args.grid_extend, 1)
        args.tv_coarse_iter, args.tv_final_iter = 20, 40
    return args


def tv_references(out: dict, m, val_config, grid, args, ratio: float,
                  tuned_label: str) -> tuple[float, torch.Tensor]:
    """TV on the test measurement ``m`` (at ``ratio``): ``kappa`` tuned on the validation data of
    ``val_config`` (label ``tuned_label``) and the best ``kappa`` of ``grid`` on test, both
    solved to the final tolerance (``lda_opt.learning.reference``), and the exact minimizer
    (PDHG) over the grid.  Fills ``out["tv_grid"]`` and ``out["methods"]``; returns the best
    TV PSNR and the best TV reconstruction (the exact minimizer's where it beats the solves,
    else the solve's at the best test ``kappa``)."""
    p = pct(ratio)
    coarse = TVSettings(max_iter=args.tv_coarse_iter, eps_tol=args.tv_tol)
    final = TVSettings(max_iter=args.tv_final_iter, eps_tol=args.tv_tol)
    val = training_data(val_config).val
    tuned = tune_tv(val, grid, coarse, progress=lambda k, r: log(f"[{p}%] TV train-tune kappa={k:g}: {r['psnr']:.2f}"))
    on_test = tune_tv(m, grid, coarse, progress=lambda k, r: log(f"[{p}%] TV test-grid kappa={k:g}: {r['psnr']:.2f}"))
    k_train, k_test = tuned["best"]["kappa"], on_test["best"]["kappa"]
    out["tv_grid"] = {"train": [{k: v for k, v in r.items() if k != "per_image"} for r in tuned["grid"]],
                      "test": [{k: v for k, v in r.items() if k != "per_image"} for r in on_test["grid"]],
                      "coarse_settings": coarse.__dict__}
    rec_train, x_tv = tv_record(m, k_train, final)
    out["methods"][tuned_label] = rec_train
    if k_test == k_train:
        rec_test = rec_train
    else:
        rec_test, x_tv = tv_record(m, k_test, final)
    out["methods"]["TV (best kappa of the grid on test)"] = rec_test
    log(f"[{p}%] TV: kappa {k_train:g} -> {rec_train['psnr']:.2f} dB; best {k_test:g} -> {rec_test['psnr']:.2f} dB")
    tv_best = max(rec_train["psnr"], rec_test["psnr"])
    exact, rec_exact, x_exact = tv_exact_grid(m, grid, PDHGSettings(max_iter=args.pdhg_max_iter, tol=args.pdhg_tol),
                                              extend=args.grid_extend,
                                              progress=lambda k, r: log(f"[{p}%] TV exact (PDHG) kappa={k:g}: {r['psnr']:.2f}"))
    out["tv_grid"]["test_exact"] = exact
    out["methods"][TV_EXACT] = rec_exact
    if rec_exact["psnr"] > tv_best:
        x_tv = x_exact
    return max(tv_best, rec_exact["psnr"]), x_tv


def write_results(name: str, args, run_ratio: Callable, plots: Callable, description: str,
                  markdown: Callable) -> int:
    """Run ``run_ratio(ratio, args)`` for every ``--ratios``, draw ``plots(results, out, tag)``
    and write ``NAME.json`` (merged with the ratios of an earlier full run) and ``NAME.md``
    (``markdown(clean, merged)``); ``_quick`` names for a smoke run."""
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "_quick" if args.quick else ""
    jpath = out / f"{name}{tag}.json"
    previous = json.loads(jpath.read_text()) if jpath.is_file() and not args.quick else {}
    results = {str(r): run_ratio(r, args) for r in args.ratios}
    plots(results, out, tag)
    clean = {r: {k: v for k, v in res.items() if not k.startswith("_")} for r, res in results.items()}
    merged = dict(previous.get("ratios", {})) | clean
    jpath.write_text(json.dumps({"description": description, "torch_threads": args.threads, "ratios": merged},
                                indent=1) + "\n")
    mpath = out / f"{name}{tag}.md"
    mpath.write_text(markdown(clean, merged))
    log(f"wrote {jpath} and {mpath}")
    return 0
