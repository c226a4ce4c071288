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

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from lda_opt.learning import load_config
from lda_opt.learning.datasets import test_images, training_data
from lda_opt.learning.experiments import (
    mean_metrics,
    phase_curve,
    reconstruct_images,
    results_table,
    train_or_reuse,
    tv_exact_grid,
    tv_record,
)
from lda_opt.learning.reference import PDHGSettings, TVSettings, tune_tv

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
#: the row of the quality bar: TV's exact minimizer (PDHG) at the best weight of the grid on test
TV_EXACT = "TV exact (PDHG), best kappa of the grid on test"
GRID = (1e-3, 2e-3, 4e-3, 7e-3, 1e-2, 2e-2, 4e-2)


def _pct(r: float) -> int:
    return round(100 * r)


def _quick(cfg):
    return cfg.with_overrides(
        name=cfg.name + "_quick",
        task={"shape": [32, 32]},
        data={"train": 4, "val": 2},
        net={"width": 4, "depth": 2},  # net.init = "tv" needs width >= 4
        train={"phases": 3, "first_phases": 1, "phase_step": 2, "epochs_first": 1, "epochs_stage": 1, "batch_size": 4},
    )


def run_ratio(ratio: float, args, log) -> dict:
    pct = _pct(ratio)
    path = CONFIGS / f"mri_radial_{pct}.json"
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
    log(f"[{pct}%] LDA-Net: training / reusing {path.name}")
    net, tlog = train_or_reuse(cfg, Path(args.runs) / cfg.name, shipped=args.shipped)
    t0 = time.perf_counter()
    x = reconstruct_images(net, m, batch_size=8)
    rec = mean_metrics(x, imgs)
    rec.update(seconds_test=time.perf_counter() - t0, phases=net.phases, parameters=net.num_parameters(),
               config=str(path.relative_to(ROOT)), budget=tlog["budget"], eps0=float(net.eps0.detach()))
    out["methods"]["LDA-Net"] = rec
    out["phase_curve"] = phase_curve(net, m, batch_size=8)
    log(f"[{pct}%] LDA-Net: PSNR {rec['psnr']:.2f} dB")
    coarse = TVSettings(max_iter=args.tv_coarse_iter, eps_tol=args.tv_tol)
    final = TVSettings(max_iter=args.tv_final_iter, eps_tol=args.tv_tol)
    grid = GRID[2:5] if args.quick else tuple(args.grid or GRID)
    val = training_data(cfg).val
    tuned = tune_tv(val, grid, coarse, progress=lambda k, r: log(f"[{pct}%] TV train-tune kappa={k:g}: {r['psnr']:.2f}"))
    on_test = tune_tv(m, grid, coarse, progress=lambda k, r: log(f"[{pct}%] TV test-grid kappa={k:g}: {r['psnr']:.2f}"))
    k_train, k_test = tuned["best"]["kappa"], on_test["best"]["kappa"]
    out["tv_grid"] = {"train": [{k: v for k, v in r.items() if k != "per_image"} for r in tuned["grid"]],
                      "test": [{k: v for k, v in r.items() if k != "per_image"} for r in on_test["grid"]],
                      "coarse_settings": coarse.__dict__}
    rec_train, x_tv = tv_record(m, k_train, final)
    out["methods"]["TV (kappa tuned on training data)"] = rec_train
    if k_test == k_train:
        rec_test = rec_train
    else:
        rec_test, x_tv = tv_record(m, k_test, final)
    out["methods"]["TV (best kappa of the grid on test)"] = rec_test
    log(f"[{pct}%] TV: kappa {k_train:g} -> {rec_train['psnr']:.2f} dB; best {k_test:g} -> {rec_test['psnr']:.2f} dB")
    tv_best = max(rec_train["psnr"], rec_test["psnr"])
    exact, rec_exact, x_exact = tv_exact_grid(m, grid, PDHGSettings(max_iter=args.pdhg_max_iter, tol=args.pdhg_tol),
                                              extend=args.grid_extend,
                                              progress=lambda k, r: log(f"[{pct}%] TV exact (PDHG) kappa={k:g}: {r['psnr']:.2f}"))
    out["tv_grid"]["test_exact"] = exact
    out["methods"][TV_EXACT] = rec_exact
    if rec_exact["psnr"] > tv_best:
        x_tv = x_exact
    tv_best = max(tv_best, rec_exact["psnr"])
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
        ax.plot(range(len(c)), c, "o-", label=f"LDA-Net {_pct(float(r))}%")
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratios", type=float, nargs="+", default=[0.10, 0.20, 0.30])
    p.add_argument("--runs", default=str(ROOT / "build" / "runs"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--n-test", type=int, default=8, help="test phantoms (plus Shepp-Logan)")
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
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    for r in args.ratios:
        if not 0 < r < 1:
            p.error(f"--ratios must be in (0, 1); got {r}")
    if args.quick:
        args.pdhg_max_iter, args.grid_extend = 500, min(args.grid_extend, 1)
        args.tv_coarse_iter, args.tv_final_iter, args.n_test = 20, 40, 2
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "_quick" if args.quick else ""

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    jpath = out / f"mri{tag}.json"
    previous = json.loads(jpath.read_text()) if jpath.is_file() and not args.quick else {}
    results = {str(r): run_ratio(r, args, log) for r in args.ratios}
    _plots(results, out, tag)
    clean = {r: {k: v for k, v in res.items() if not k.startswith("_")} for r, res in results.items()}
    merged = dict(previous.get("ratios", {})) | clean
    jpath.write_text(json.dumps({"description": "radial CS-MRI at laptop scale (LDA Sec. 4.2.3); see benchmarks/mri.py",
                                 "torch_threads": args.threads, "ratios": merged}, indent=1) + "\n")
    t = next(iter(clean.values()))["test"]
    (out / f"mri{tag}.md").write_text(
        "# Radial CS-MRI (LDA Table 3 / Fig. 6 left), laptop scale\n\n"
        f"Produced by `python benchmarks/mri.py`. Test: {len(t['images'])} held-out images "
        f"({', '.join(t['images'])}) of {t['shape'][0]} x {t['shape'][1]}, smooth random phase up to "
        f"{t['max_phase']} rad; PSNR and RelErr on complex images (peak max|x|), SSIM on magnitudes.\n\n"
        + _table(merged))
    log(f"wrote {jpath} and {out / f'mri{tag}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
