r"""The shipped MRI LDA-Net (trained at 64 x 64) on test phantoms at 64 x 64 and 128 x 128.

A checkpoint is a regularizer q (a convolutional feature map); the forward model is the
user's: at 128 x 128 the radial 20 % mask is drawn from the stored pattern, ratio and seed
(:func:`lda_opt.tasks.task_at_shape`, what ``lda-opt solve --checkpoint shipped --size 128``
does) and the network is used as trained, with its K phases.  The test phantoms are
``lda_opt.learning.datasets.test_images`` (seed ``MRI_TEST_SEED``, never trained on, with the
training distribution's smooth random phase) plus Shepp-Logan, generated at each size; the
metrics are those of ``benchmarks/mri.py`` (PSNR of the complex image, peak ``max|x|``).

Budget: no training; the K = 11 phases once per image per size (1 CPU thread).

Usage: ``python benchmarks/any_size.py [--n-test 8] [--sizes 64 128]``; writes
``benchmarks/results/any_size.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from _common import RESULTS

from lda_opt.experiments.learning import mean_metrics, reconstruct_images
from lda_opt.learning import load_lda_net, shipped_checkpoint, task_from_metadata
from lda_opt.learning.datasets import test_images
from lda_opt.tasks import task_at_shape


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-test", type=int, default=8)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    path = shipped_checkpoint("mri", 0.2, "radial")
    net = load_lda_net(path)
    meta = net.checkpoint_metadata
    max_phase = meta["training"]["config"]["data"]["max_phase"]
    rows = {}
    for size in args.sizes:
        task = task_at_shape(task_from_metadata(meta), size)
        imgs, names = test_images(task, n=args.n_test, max_phase=max_phase)
        m = task.measure(imgs)
        t0 = time.perf_counter()
        with torch.no_grad():
            x = reconstruct_images(net, m, batch_size=4)
        rows[size] = {"images": names, "sampling_ratio": float(task.mask_tensor().double().mean()),
                      "zero-filling": mean_metrics(m.x0, imgs), "LDA-Net": mean_metrics(x, imgs),
                      "seconds": time.perf_counter() - t0}
        print(f"{size} x {size}: zero filling {rows[size]['zero-filling']['psnr']:.2f} dB, "
              f"LDA-Net {rows[size]['LDA-Net']['psnr']:.2f} dB ({rows[size]['seconds']:.0f} s)", flush=True)
    out = {"checkpoint": path.name, "trained_shape": meta["problem"]["shape"], "phases": net.phases,
           "n_test": args.n_test, "max_phase": max_phase, "sizes": rows, "torch": torch.__version__}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "any_size.json").write_text(json.dumps(out, indent=1) + "\n")
    md = ["# The shipped MRI LDA-Net at another image size", "",
          (f"Produced by `python benchmarks/any_size.py`. Checkpoint `{path.name}` (trained at "
          f"{meta['problem']['shape'][0]} x {meta['problem']['shape'][1]}, K = {net.phases} phases), radial 20 % "
          f"mask drawn at each size from its stored pattern, ratio and seed; {args.n_test} held-out test phantoms "
          "(smooth random phase, as in training) + Shepp-Logan; PSNR of the complex image (peak max|x|), SSIM of "
          "the magnitudes, as in `benchmarks/mri.py`. No training; the K phases once per image."), "",
          "| size | sampled fraction | zero filling PSNR | LDA-Net PSNR | LDA-Net SSIM | gain over zero filling |",
          "|---|---|---|---|---|---|"]
    for size, r in rows.items():
        zf, ln = r["zero-filling"], r["LDA-Net"]
        md.append(f"| {size} x {size} | {r['sampling_ratio']:.4f} | {zf['psnr']:.2f} dB | {ln['psnr']:.2f} dB | "
                  f"{ln['ssim']:.3f} | {ln['psnr'] - zf['psnr']:+.2f} dB |")
    (RESULTS / "any_size.md").write_text("\n".join(md) + "\n")
    print("\n".join(md[-len(rows) - 2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
