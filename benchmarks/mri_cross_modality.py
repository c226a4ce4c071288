"""Cross-modality training data for MRI (U-LDA Sec. 5.2.3), an A/B at the short budget.

Trains (or reuses, in ``--runs``) two LDA-Nets for radial MRI at 20 % that differ only in
their training data, with the same number of samples and Adam steps:

* ``configs/mri_radial_20_short.json``: 64 random-ellipse phantoms;
* ``configs/mri_radial_20_natural.json``: 32 phantoms plus 32 natural-image crops of the
  training split (``data.natural``),

and evaluates both on the held-out MRI test set of ``benchmarks/mri.py`` (8 phantoms and
Shepp-Logan, complex PSNR / RelErr / SSIM).  Writes ``mri_cross_modality.{json,md}``.

Usage::

    python benchmarks/mri_cross_modality.py --runs build/runs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from lda_opt.experiments.learning import mean_metrics, reconstruct_images, train_or_reuse
from lda_opt.learning import load_config
from lda_opt.learning.datasets import test_images

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"64 phantoms": "mri_radial_20_short", "32 phantoms + 32 natural crops": "mri_radial_20_natural"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=str(ROOT / "build" / "runs"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--n-test", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny networks, 32x32, one epoch per stage")
    args = p.parse_args(argv)
    if args.quick:
        args.n_test = 2
    torch.set_num_threads(1)
    rows = {}
    for label, name in CONFIGS.items():
        cfg = load_config(ROOT / "configs" / f"{name}.json")
        if args.quick:  # 4 training images, split between phantoms and natural crops as in the config
            phantoms = 4 * cfg.data.train // (cfg.data.train + cfg.data.natural)
            cfg = cfg.with_overrides(name=cfg.name + "_quick", task={"shape": [32, 32]},
                                     data={"train": phantoms, "natural": 4 - phantoms, "val": 2},
                                     net={"width": 4, "depth": 2},
                                     train={"phases": 3, "first_phases": 1, "phase_step": 2, "epochs_first": 1,
                                            "epochs_stage": 1, "batch_size": 4})
        task = cfg.task.build()
        imgs, names = test_images(task, n=args.n_test, max_phase=cfg.data.max_phase)
        m = task.measure(imgs)
        net, log = train_or_reuse(cfg, Path(args.runs) / cfg.name)
        rec = mean_metrics(reconstruct_images(net, m, batch_size=8), imgs)
        rec.update(config=f"configs/{name}.json", budget=log["budget"], val_psnr=log["epochs"][-1]["val_psnr"],
                   images=names)
        rows[label] = rec
        print(f"{label}: test PSNR {rec['psnr']:.2f} dB, val PSNR {rec['val_psnr']:.2f} dB", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "_quick" if args.quick else ""
    (out / f"mri_cross_modality{tag}.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# Cross-modality training data, radial MRI 20 % (short budget)", "",
             "Produced by `python benchmarks/mri_cross_modality.py`; test set of `benchmarks/mri.py`.", "",
             "| training data | test PSNR / RelErr / SSIM | val PSNR | Adam steps | training s |", "|---|---|---|---|---|"]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['psnr']:.2f} / {r['relerr']:.4f} / {r['ssim']:.4f} | {r['val_psnr']:.2f} | "
                     f"{r['budget']['steps']} | {r['budget']['seconds']:.0f} |")
    (out / f"mri_cross_modality{tag}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
