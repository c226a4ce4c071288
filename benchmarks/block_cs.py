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
GRID = (3e-4, 6e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2)


def _pct(r: float) -> int:
    return round(100 * r)


def run_ratio(ratio: float, args, log) -> dict:
    pct = _pct(ratio)
    out: dict = {"methods": {}, "phase_curves": {}}
    cfg_path = CONFIGS / f"block_cs_{pct}{args.config_suffix}.json"
    configs = {"LDA-Net": cfg_path}
    if abs(ratio - 0.25) < 1e-9 and not args.no_baselines:
        for alg, label in (("short", "LDA-Net"), ("gd", "GD-Net"), ("agd", "AGD-Net")):
            configs[f"{label} (short budget)"] = CONFIGS / f"block_cs_{pct}_{alg}{args.config_suffix}.json"
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
        log(f"[{pct}%] {label}: training / reusing {path.name}")
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
        log(f"[{pct}%] {label}: PSNR {rec['psnr']:.2f} dB")
    # TV: tuned on the validation crops (training-split images), and the best kappa on test
    coarse = TVSettings(max_iter=args.tv_coarse_iter, eps_tol=args.tv_tol)
    final = TVSettings(max_iter=args.tv_final_iter, eps_tol=args.tv_tol)
    grid = GRID[2:6] if args.quick else tuple(args.grid or GRID)
    val = training_data(first if not args.quick else _quick(first)).val
    tuned = tune_tv(val, grid, coarse, progress=lambda k, r: log(f"[{pct}%] TV train-tune kappa={k:g}: {r['psnr']:.2f}"))
    on_test = tune_tv(m, grid, coarse, progress=lambda k, r: log(f"[{pct}%] TV test-grid kappa={k:g}: {r['psnr']:.2f}"))
    k_train, k_test = tuned["best"]["kappa"], on_test["best"]["kappa"]
    out["tv_grid"] = {"train": [{k: v for k, v in r.items() if k != "per_image"} for r in tuned["grid"]],
                      "test": [{k: v for k, v in r.items() if k != "per_image"} for r in on_test["grid"]],
                      "coarse_settings": coarse.__dict__}
    rec_train, _ = tv_record(m, k_train, final)
    out["methods"]["TV (kappa tuned on training images)"] = rec_train
    rec_test = rec_train if k_test == k_train else tv_record(m, k_test, final)[0]
    out["methods"]["TV (best kappa of the grid on test)"] = rec_test
    log(f"[{pct}%] TV: kappa {k_train:g} -> {rec_train['psnr']:.2f} dB; best {k_test:g} -> {rec_test['psnr']:.2f} dB")
    tv_best = max(rec_train["psnr"], rec_test["psnr"])
    exact, rec_exact, _ = tv_exact_grid(m, grid, PDHGSettings(max_iter=args.pdhg_max_iter, tol=args.pdhg_tol),
                                        extend=args.grid_extend,
                                        progress=lambda k, r: log(f"[{pct}%] TV exact (PDHG) kappa={k:g}: {r['psnr']:.2f}"))
    out["tv_grid"]["test_exact"] = exact
    out["methods"][TV_EXACT] = rec_exact
    tv_best = max(tv_best, rec_exact["psnr"])
    if "LDA-Net" in nets:
        out["margin_db_vs_best_tv"] = out["methods"]["LDA-Net"]["psnr"] - tv_best
    out["_images"] = {"truth": imgs, "x0": m.to_image(m.x0), "lda": nets["LDA-Net"][1] if "LDA-Net" in nets else None}
    out["_tv_image"] = None
    return out


def _quick(cfg):
    return cfg.with_overrides(
        name=cfg.name + "_quick",
        data={"train": 16, "val": 8, "min_std": 0.0},
        net={"width": 4, "depth": 2},
        train={"phases": 3, "first_phases": 1, "phase_step": 2, "epochs_first": 1, "epochs_stage": 1,
               "batch_size": 8},
    )


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
    ax.set_title(f"block CS {_pct(float(r25))}%: PSNR vs phase (LDA Fig. 6 right)")
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratios", type=float, nargs="+", default=[0.10, 0.25, 0.50])
    p.add_argument("--runs", default=str(ROOT / "build" / "runs"), help="training directories (reused / resumed)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--test-size", type=int, default=132)
    p.add_argument("--tv-coarse-iter", type=int, default=300)
    p.add_argument("--tv-final-iter", type=int, default=3000)
    p.add_argument("--tv-tol", type=float, default=1e-3)
    p.add_argument("--grid", type=float, nargs="+", default=None,
                   help="TV weights kappa to try (default: GRID)")
    p.add_argument("--config-suffix", default="", help=argparse.SUPPRESS)
    p.add_argument("--no-baselines", action="store_true", help="skip GD-Net / AGD-Net")
    p.add_argument("--pdhg-max-iter", type=int, default=20000, help="exact TV (PDHG): iteration cap")
    p.add_argument("--shipped", action="store_true",
                   help="evaluate the shipped checkpoint of the LDA-Net config when it was trained with it")
    p.add_argument("--grid-extend", type=int, default=6,
                   help="exact TV: weights the grid may grow by past an end holding the best weight")
    p.add_argument("--pdhg-tol", type=float, default=1e-6, help="exact TV (PDHG): residual tolerance")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny networks, one epoch per stage, few TV iterations")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    for r in args.ratios:
        if not 0 < r < 1:
            p.error(f"--ratios must be in (0, 1); got {r}")
    if args.quick:
        args.pdhg_max_iter, args.grid_extend = 500, min(args.grid_extend, 1)
        args.tv_coarse_iter, args.tv_final_iter, args.test_size = 20, 40, 66
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "_quick" if args.quick else ""

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = {}
    jpath = out / f"block_cs{tag}.json"
    previous = json.loads(jpath.read_text()) if jpath.is_file() and not args.quick else {}
    for r in args.ratios:
        results[str(r)] = run_ratio(r, args, log)
    _plots(results, out, tag)
    clean = {r: {k: v for k, v in res.items() if not k.startswith("_")} for r, res in results.items()}
    merged = dict(previous.get("ratios", {})) | clean
    doc = {"description": "block CS at laptop scale (LDA Sec. 4.2.1); see benchmarks/block_cs.py",
           "torch_threads": args.threads, "ratios": merged}
    jpath.write_text(json.dumps(doc, indent=1) + "\n")
    (out / f"block_cs{tag}.md").write_text(
        "# Block CS (LDA Table 1 / Fig. 6 right), laptop scale\n\n"
        "Produced by `python benchmarks/block_cs.py`. Test images: "
        f"{', '.join(next(iter(clean.values()))['test']['images'])} at {args.test_size} x {args.test_size} "
        "(held out), PSNR/SSIM/RelErr on whole images, data range 1.\n\n" + _table(merged))
    log(f"wrote {jpath} and {out / f'block_cs{tag}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
