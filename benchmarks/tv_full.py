"""TV on the held-out test set of ``benchmarks/mri.py`` or ``benchmarks/block_cs.py`` at chosen
weights, each solved with the full budget (``--max-iter``, default 3000) -- the best-tuned TV
of the quality bar.  The grids of ``mri.py`` / ``block_cs.py`` are tuned with only 300
iterations, which favours large kappa; this script solves every weight of the grid to the
final budget, so "the best kappa over a grid" is the best fully solved one.

Usage::

    python benchmarks/tv_full.py --config configs/mri_radial_20.json --kappas 0.002 0.003 0.005
    python benchmarks/tv_full.py --config configs/block_cs_25.json --kappas 0.001 0.002 0.003
    # -> benchmarks/results/<config name>_tv_full.json
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
    p.add_argument("--n-test", type=int, default=8, help="MRI: test phantoms (plus Shepp-Logan)")
    p.add_argument("--test-size", type=int, default=132, help="block CS: side of the test images")
    p.add_argument("--max-iter", type=int, default=3000)
    p.add_argument("--tv-tol", type=float, default=1e-3)
    p.add_argument("--out", default=None, help="default: benchmarks/results/<config name>_tv_full.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    task = cfg.task.build()
    imgs, names = test_images(task, n=args.n_test, size=args.test_size, max_phase=cfg.data.max_phase)
    m = task.measure(imgs)
    settings = TVSettings(max_iter=args.max_iter, eps_tol=args.tv_tol)
    rows = []
    for kappa in args.kappas:
        t0 = time.process_time()
        res = tv_solve(m, kappa, settings)
        rec = mean_metrics(m.to_image(res.x), imgs)
        rec.update(kappa=kappa, iterations_max=int(res.iterations.max()), converged=int(res.converged.sum()),
                   samples=len(res.reason), cpu_seconds=time.process_time() - t0)
        rows.append(rec)
        print(f"TV kappa={kappa:g}: PSNR {rec['psnr']:.2f} dB, SSIM {rec['ssim']:.4f}, "
              f"{rec['converged']}/{rec['samples']} converged, {rec['cpu_seconds']:.0f} CPU s", flush=True)
    best = max(rows, key=lambda r: r["psnr"])
    print(f"best: kappa={best['kappa']:g}, PSNR {best['psnr']:.2f} dB", flush=True)
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"{cfg.name}_tv_full.json"
    out.write_text(json.dumps({"config": args.config, "task": task.metadata(), "images": names,
                               "settings": settings.__dict__, "best_kappa": best["kappa"], "rows": rows},
                              indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
