r"""Block compressed sensing (LDA Sec. 4.2.1, Table 1 and Fig. 6 right) at laptop scale.

For every CS ratio (10 %, 25 %, 50 %) this script

1. trains (or reuses / resumes, in ``--runs``) LDA-Net from ``configs/block_cs_<pct>.json``
   and, at 25 %, the same-budget comparison of LDA Sec. 4.3.1: LDA-Net, GD-Net and AGD-Net
   from ``configs/block_cs_25_short.json``, ``..._gd.json`` and ``..._agd.json`` (identical
   but for ``net.algorithm``: same data, same stair schedule, same epochs and Adam steps;
   the shorter schedule of the 10 % and 50 % rows, so that the three fit the CPU budget);
2. reconstructs the held-out test images (``lda_opt.data.TEST_IMAGES`` at
   ``--test-size``, never seen in training) block by block, and measures PSNR / SSIM / RelErr
   on the reassembled images (data range 1);
3. solves TV (``lda_opt.learning.reference``; LDA Algorithm 1 with backtracking and
   eps-continuation) for a grid of weights ``kappa``, on the validation crops (images of the
   training split held out from network training: "kappa tuned on training images") and on
   the test images ("best kappa over the grid", an oracle for TV); each chosen ``kappa`` is
   then solved to the final tolerance;
4. records the linear start ``x0 = Q b`` and the PSNR after every phase (Fig. 6 right).

Outputs: ``block_cs.json`` (everything, per image), ``block_cs.md`` (the table with the
compute budget of every row), ``block_cs_phases.png`` (PSNR vs phase) and
``block_cs_recon.png`` (one test image at 25 %).

Usage::

    python benchmarks/block_cs.py                       # all ratios (hours on 1 CPU thread)
    python benchmarks/block_cs.py --ratios 0.25         # one ratio
    python benchmarks/block_cs.py --quick --out /tmp/q  # smoke run: tiny configs, few iterations
"""

from __future__ import annotations

import argparse
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

GRID = (3e-4, 6e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2)


def run_ratio(ratio: float, args) -> dict:
    p = pct(ratio)
    out: dict = {"methods": {}, "phase_curves": {}}
    cfg_path = CONFIGS / f"block_cs_{p}{args.config_suffix}.json"
    configs = {"LDA-Net": cfg_path}
    if abs(ratio - 0.25) < 1e-9 and not args.no_baselines:
        for alg, label in (("short", "LDA-Net"), ("gd", "GD-Net"), ("agd", "AGD-Net")):
            configs[f"{label} (short budget)"] = CONFIGS / f"block_cs_{p}_{alg}{args.config_suffix}.json"
    first = load_config(cfg_path)
    task = first.task.build()
    imgs, names = test_images(task, size=args.test_size)
    m = task.measure(imgs)
    out["test"] = {"images": names, "size": args.test_size, "blocks": int(m.y.shape[0])}
    out["methods"]["linear start x0 = Qb"] = mean_metrics(m.to_image(m.x0), imgs)
    nets = {}
    for label, path in configs.items():
        cfg = load_config(path)
        if args.quick:
            cfg = _quick(cfg)
        log(f"[{p}%] {label}: training / reusing {path.name}")
        net, tlog = train_or_reuse(cfg, Path(args.runs) / cfg.name, shipped=args.shipped and label == "LDA-Net")
        t0 = time.perf_counter()
        x = reconstruct_images(net, m)
        rec = mean_metrics(x, imgs)
        rec.update(seconds_test=time.perf_counter() - t0, phases=net.phases, parameters=net.num_parameters(),
                   config=str(path.relative_to(ROOT)), budget=tlog["budget"],
                   algorithm=net.algorithm, eps0=float(net.eps0.detach()))
        out["methods"][label] = rec
        out["phase_curves"][label] = phase_curve(net, m)
        nets[label] = (net, x)
        log(f"[{p}%] {label}: PSNR {rec['psnr']:.2f} dB")
    # TV: tuned on the validation crops (training-split images), and the best kappa on test
    grid = GRID[2:6] if args.quick else tuple(args.grid or GRID)
    tv_best, _ = tv_references(out, m, first if not args.quick else _quick(first), grid, args, ratio,
                               "TV (kappa tuned on training images)")
    if "LDA-Net" in nets:
        out["margin_db_vs_best_tv"] = out["methods"]["LDA-Net"]["psnr"] - tv_best
    out["_images"] = {"truth": imgs, "x0": m.to_image(m.x0), "lda": nets["LDA-Net"][1] if "LDA-Net" in nets else None}
    return out


def _quick(cfg):
    return quick_config(cfg, 8, data={"train": 16, "val": 8, "min_std": 0.0})


def _table(results: dict) -> str:
    return results_table(results, ("psnr", "ssim", "relerr"), "blocks", "one matrix product")


def _plots(results: dict, out: Path, tag: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r25 = next((r for r in results if abs(float(r) - 0.25) < 1e-9), None) or next(iter(results))
    res = results[r25]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, curve in res["phase_curves"].items():
        ax.plot(range(len(curve)), curve, "o-", label=label)
    tv = res["methods"]["TV (best kappa of the grid on test)"]["psnr"]
    ax.axhline(tv, color="k", ls="--", lw=1, label="TV (best kappa, to tolerance)")
    ax.set_xlabel("phase k")
    ax.set_ylabel("test PSNR (dB)")
    ax.set_title(f"block CS {pct(float(r25))}%: PSNR vs phase (LDA Fig. 6 right)")
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.9)
    fig.savefig(out / f"block_cs{tag}_phases.png", dpi=90)
    plt.close(fig)
    ims = res["_images"]
    if ims["lda"] is not None:
        fig, ax = plt.subplots(1, 3, figsize=(9, 3.3))
        tr = ims["truth"][0, 0]
        for a, (t, img) in zip(ax, [("ground truth", ims["truth"]), ("x0 = Qb", ims["x0"]), ("LDA-Net", ims["lda"])]):
            a.imshow(img[0, 0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            p = -10 * torch.log10((img[0, 0] - tr).square().mean()).item() if t != "ground truth" else None
            a.set_title(t + ("" if p is None else f" ({p:.2f} dB)"), fontsize=9)
            a.axis("off")
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.9, wspace=0.05)
        fig.savefig(out / f"block_cs{tag}_recon.png", dpi=90)
        plt.close(fig)


def main(argv=None) -> int:
    p = reconstruction_parser(__doc__.splitlines()[0], [0.10, 0.25, 0.50])
    p.add_argument("--test-size", type=int, default=132)
    p.add_argument("--config-suffix", default="", help=argparse.SUPPRESS)
    p.add_argument("--no-baselines", action="store_true", help="skip GD-Net / AGD-Net")
    args = reconstruction_args(p, argv)
    if args.quick:
        args.test_size = 66

    def markdown(clean: dict, merged: dict) -> str:
        return ("# Block CS (LDA Table 1 / Fig. 6 right), laptop scale\n\n"
                "Produced by `python benchmarks/block_cs.py`. Test images: "
                f"{', '.join(next(iter(clean.values()))['test']['images'])} at {args.test_size} x {args.test_size} "
                "(held out), PSNR/SSIM/RelErr on whole images, data range 1.\n\n" + _table(merged))

    return write_results("block_cs", args, run_ratio, _plots,
                         "block CS at laptop scale (LDA Sec. 4.2.1); see benchmarks/block_cs.py", markdown)


if __name__ == "__main__":
    sys.exit(main())
