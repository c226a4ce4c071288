r"""CS-MRI with radial masks (LDA Sec. 4.2.3, Table 3 and Fig. 6 left) at laptop scale.

For every sampling ratio (10 %, 20 %, 30 %, radial masks, ``A = P F``) this script

1. trains (or reuses / resumes, in ``--runs``) LDA-Net with a complex FeatureCNN from
   ``configs/mri_radial_<pct>.json`` (random-ellipse phantoms with a smooth random phase;
   zero-filling start);
2. reconstructs held-out test phantoms (seed ``lda_opt.learning.datasets.MRI_TEST_SEED``,
   never used for training) and the Shepp-Logan phantom, and measures PSNR and RelErr of the
   complex images (peak ``max|x|``) and SSIM of the magnitudes;
3. compares with zero-filling ``A^H y`` and TV (``lda_opt.learning.reference``) with ``kappa``
   tuned on the validation phantoms ("tuned on training data") and the best ``kappa`` of the
   grid on the test images (an oracle for TV), each solved to the final tolerance;
4. records the PSNR after every phase (Fig. 6 left).

Outputs: ``mri.json``, ``mri.md`` (the table with every run's compute budget),
``mri_phases.png`` and ``mri_recon.png`` (one test phantom at 20 %, with error maps).

Usage::

    python benchmarks/mri.py                         # all ratios
    python benchmarks/mri.py --ratios 0.2
    python benchmarks/mri.py --quick --out /tmp/q    # smoke run
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from _common import (
    CONFIGS,
    ROOT,
    TV_EXACT,
    log,
    pct,
    quick_config,
    reconstruction_args,
    reconstruction_parser,
    tv_references,
    write_results,
)

from lda_opt.experiments.learning import (
    mean_metrics,
    phase_curve,
    reconstruct_images,
    results_table,
    train_or_reuse,
)
from lda_opt.learning import load_config
from lda_opt.learning.datasets import test_images

__all__ = ["GRID", "TV_EXACT", "main", "run_ratio"]

GRID = (1e-3, 2e-3, 4e-3, 7e-3, 1e-2, 2e-2, 4e-2)


def _quick(cfg):
    return quick_config(cfg, 4, task={"shape": [32, 32]}, data={"train": 4, "val": 2})


def run_ratio(ratio: float, args) -> dict:
    p = pct(ratio)
    path = CONFIGS / f"mri_radial_{p}.json"
    cfg = load_config(path)
    if args.quick:
        cfg = _quick(cfg)
    task = cfg.task.build()
    imgs, names = test_images(task, n=args.n_test, max_phase=cfg.data.max_phase)
    m = task.measure(imgs)
    out: dict = {"test": {"images": names, "shape": list(task.shape), "max_phase": cfg.data.max_phase,
                          "mask": task.mask, "mask_seed": task.mask_seed,
                          "sampling_ratio": float(task.mask_tensor().mean())},
                 "methods": {}}
    out["methods"]["zero-filling"] = mean_metrics(m.x0, imgs)
    log(f"[{p}%] LDA-Net: training / reusing {path.name}")
    net, tlog = train_or_reuse(cfg, Path(args.runs) / cfg.name, shipped=args.shipped)
    t0 = time.perf_counter()
    x = reconstruct_images(net, m, batch_size=8)
    rec = mean_metrics(x, imgs)
    rec.update(seconds_test=time.perf_counter() - t0, phases=net.phases, parameters=net.num_parameters(),
               config=str(path.relative_to(ROOT)), budget=tlog["budget"], eps0=float(net.eps0.detach()))
    out["methods"]["LDA-Net"] = rec
    out["phase_curve"] = phase_curve(net, m, batch_size=8)
    log(f"[{p}%] LDA-Net: PSNR {rec['psnr']:.2f} dB")
    grid = GRID[2:5] if args.quick else tuple(args.grid or GRID)
    tv_best, x_tv = tv_references(out, m, cfg, grid, args, ratio, "TV (kappa tuned on training data)")
    out["margin_db_vs_best_tv"] = rec["psnr"] - tv_best
    out["_images"] = {"truth": imgs, "zf": m.x0, "tv": x_tv, "lda": x, "mask": task.mask_tensor()}
    return out


def _table(results: dict) -> str:
    return results_table(results, ("psnr", "relerr", "ssim"), "images", "one inverse FFT")


def _plots(results: dict, out: Path, tag: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for r in sorted(results, key=float):
        c = results[r]["phase_curve"]
        ax.plot(range(len(c)), c, "o-", label=f"LDA-Net {pct(float(r))}%")
    ax.set_xlabel("phase k")
    ax.set_ylabel("test PSNR (dB)")
    ax.set_title("radial CS-MRI: PSNR vs phase (LDA Fig. 6 left)")
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.9)
    fig.savefig(out / f"mri{tag}_phases.png", dpi=90)
    plt.close(fig)
    r = next((r for r in results if abs(float(r) - 0.2) < 1e-9), None) or next(iter(results))
    ims = results[r]["_images"]
    i = 0
    truth = ims["truth"][i, 0].abs()
    panels = [("ground truth", truth), ("mask (centred)", torch.fft.fftshift(ims["mask"]))]
    for key, label in (("zf", "zero-filling"), ("tv", "TV"), ("lda", "LDA-Net")):
        panels.append((label, ims[key][i, 0].abs()))
    fig, ax = plt.subplots(2, 5, figsize=(12, 5))
    peak = float(truth.max())
    for j, (t, img) in enumerate(panels):
        ax[0, j].imshow(img.numpy(), cmap="gray", vmin=0, vmax=peak if j != 1 else 1)
        if j >= 2:
            err = (ims[["zf", "tv", "lda"][j - 2]][i, 0] - ims["truth"][i, 0]).abs()
            p = 20 * torch.log10(ims["truth"][i, 0].abs().max() / err.square().mean().sqrt()).item()
            t += f" ({p:.2f} dB)"
            ax[1, j].imshow(err.numpy(), cmap="magma", vmin=0, vmax=0.25 * peak)
        ax[0, j].set_title(t, fontsize=9)
        ax[0, j].axis("off")
        ax[1, j].axis("off")
    ax[1, 2].set_title("|error| (same scale)", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.93, wspace=0.05, hspace=0.12)
    fig.savefig(out / f"mri{tag}_recon.png", dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    p = reconstruction_parser(__doc__.splitlines()[0], [0.10, 0.20, 0.30])
    p.add_argument("--n-test", type=int, default=8, help="test phantoms (plus Shepp-Logan)")
    args = reconstruction_args(p, argv)
    if args.quick:
        args.n_test = 2

    def markdown(clean: dict, merged: dict) -> str:
        t = next(iter(clean.values()))["test"]
        return ("# Radial CS-MRI (LDA Table 3 / Fig. 6 left), laptop scale\n\n"
                f"Produced by `python benchmarks/mri.py`. Test: {len(t['images'])} held-out images "
                f"({', '.join(t['images'])}) of {t['shape'][0]} x {t['shape'][1]}, smooth random phase up to "
                f"{t['max_phase']} rad; PSNR and RelErr on complex images (peak max|x|), SSIM on magnitudes.\n\n"
                + _table(merged))

    return write_results("mri", args, run_ratio, _plots,
                         "radial CS-MRI at laptop scale (LDA Sec. 4.2.3); see benchmarks/mri.py", markdown)


if __name__ == "__main__":
    sys.exit(main())
