"""TV on the held-out MRI test set of ``benchmarks/mri.py`` at chosen weights, each solved with
the full budget (``--max-iter``, default 3000) -- a check of the grid choice of ``mri.py``,
whose coarse tuning runs only 300 iterations and so favours large kappa.

Usage::

    python benchmarks/mri_tv_full.py --kappas 0.003 --out benchmarks/results/mri_tv_full.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lda_opt.learning import load_config
from lda_opt.learning.datasets import test_images
from lda_opt.learning.experiments import mean_metrics
from lda_opt.learning.reference import TVSettings, tv_solve

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "mri_radial_20.json"))
    p.add_argument("--kappas", type=float, nargs="+", default=[0.003])
    p.add_argument("--n-test", type=int, default=8)
    p.add_argument("--max-iter", type=int, default=3000)
    p.add_argument("--tv-tol", type=float, default=1e-3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mri_tv_full.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    task = cfg.task.build()
    imgs, names = test_images(task, n=args.n_test, max_phase=cfg.data.max_phase)
    m = task.measure(imgs)
    settings = TVSettings(max_iter=args.max_iter, eps_tol=args.tv_tol)
    rows = []
    for kappa in args.kappas:
        t0 = time.process_time()
        res = tv_solve(m, kappa, settings)
        rec = mean_metrics(res.x, imgs)
        rec.update(kappa=kappa, iterations_max=int(res.iterations.max()), converged=int(res.converged.sum()),
                   samples=len(res.reason), cpu_seconds=time.process_time() - t0)
        rows.append(rec)
        print(f"TV kappa={kappa:g}: PSNR {rec['psnr']:.2f} dB, SSIM {rec['ssim']:.4f}, "
              f"{rec['converged']}/{rec['samples']} converged, {rec['cpu_seconds']:.0f} CPU s", flush=True)
    Path(args.out).write_text(json.dumps({"config": args.config, "images": names, "settings": settings.__dict__,
                                          "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
