"""Side-by-side figure of ``lda-opt solve`` runs on the same instance (used by ``make demo``).

Command: ``python -m lda_opt.experiments.compare --out FIG.png DIR [DIR ...]`` (:func:`main`).

Every ``DIR`` is the ``--out`` directory of one ``lda-opt solve`` run (its ``result.json`` and
``x.npy``).  All runs must be of the same instance (problem, image, size, ratio, mask, noise,
seed; a run with ``--checkpoint`` brings its task's matrix or mask, so the start ``x0`` of every
run must have the same PSNR, which is checked).  The figure shows the ground truth, the start
``x0`` and each run's reconstruction (magnitudes for MRI) with its PSNR, and below them the
absolute errors on one common scale.  A JSON summary (``FIG.json``) lists the PSNRs.
``compare_runs(..., extra=[(label, image, psnr), ...])`` adds reconstructions that are not
solve runs (e.g. the exact TV minimizer, or an LDA-Net's K-phase output), drawn after them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ..instances import make_instance

__all__ = ["compare_runs", "main"]

_SAME = ("kind", "image", "size", "noise", "seed")


def _label(res: dict) -> str:
    cfg = res["config"]
    if cfg.get("checkpoint"):
        ph = (res["problem"].get("phases") or {}).get("K")
        it = int(res.get("iterations", 0))
        more = f" + {it} {res['algorithm'].upper()} it." if it else ""
        return f"LDA-Net ({ph} phases{more})" if ph else "learned q"
    return (f"{cfg.get('regularizer') or 'tv'}".upper() + f", kappa={res['problem']['weight']:g}"
            + f", {int(res.get('iterations', 0))} it.")


def compare_runs(dirs: list[str | Path], out_png: str | Path, extra: list | None = None) -> dict:
    """Draw the figure of the runs in ``dirs`` into ``out_png``; returns the summary.

    ``extra``: ``(label, image, psnr)`` triples of other reconstructions of the same instance
    (``image``: an (H, W) array of magnitudes, ``psnr`` in dB as the runs report it), drawn
    after the runs and listed in the summary under ``"extra"``."""
    if not dirs:
        raise ValueError("give at least one solve output directory")
    runs = []
    for d in dirs:
        d = Path(d)
        if not (d / "result.json").is_file() or not (d / "x.npy").is_file():
            raise FileNotFoundError(f"{d}: no result.json / x.npy (an `lda-opt solve --out` directory?)")
        res = json.loads((d / "result.json").read_text(encoding="utf-8"))
        runs.append((d, res, np.load(d / "x.npy", allow_pickle=False)))
    prob0 = runs[0][1]["problem"]
    for d, res, _ in runs[1:]:
        diff = [k for k in _SAME if res["problem"].get(k) != prob0.get(k)]
        if diff:
            raise ValueError(f"{d} is a different instance than {runs[0][0]}: {diff} differ")
        if abs(res["psnr_x0"] - runs[0][1]["psnr_x0"]) > 1e-3:  # float32 vs float64 runs
            raise ValueError(f"{d}: its start x0 differs from {runs[0][0]}'s (another sensing matrix or mask)")
    inst = make_instance(prob0["kind"], image=prob0.get("image"), size=prob0["size"],
                         ratio=prob0.get("ratio"), mask=prob0.get("mask") or "radial", noise=prob0.get("noise"),
                         seed=prob0.get("seed", 0), dtype=torch.float64)
    truth = inst.truth.abs()[0, 0].numpy() if inst.truth.is_complex() else inst.truth[0, 0].numpy()
    # x0 of the first run: the same for all (checked above); rebuild it from the run's own task
    images, titles, summary = [], [], {"instance": {k: prob0.get(k) for k in _SAME}, "runs": []}
    for d, res, x in runs:
        xt = torch.from_numpy(x)
        img = inst.to_image(xt.to(inst.x0.dtype)) if tuple(xt.shape) == tuple(inst.x0.shape) else xt
        img = img.abs() if img.is_complex() else img
        images.append(img.reshape(truth.shape).numpy())
        titles.append(f"{_label(res)}\n{res['psnr']:.2f} dB")
        summary["runs"].append({"dir": str(d), "label": _label(res), "psnr": res["psnr"], "psnr_x0": res["psnr_x0"],
                                "weight": res["problem"]["weight"], "seconds": res.get("seconds")})
    for label, im, value in extra or ():
        im = np.asarray(im, dtype=np.float64)
        if im.shape != truth.shape:
            raise ValueError(f"extra image {label!r} has shape {im.shape}; the instance's is {truth.shape}")
        images.append(im)
        titles.append(f"{label}\n{float(value):.2f} dB")
        summary.setdefault("extra", []).append({"label": label, "psnr": float(value)})
    x0 = inst.to_image(inst.x0)
    x0 = (x0.abs() if x0.is_complex() else x0)[0, 0].numpy()
    start = "zero-filling" if prob0["kind"] == "mri" else "x0"
    cols = [("ground truth", truth), (f"{start}\n{runs[0][1]['psnr_x0']:.2f} dB", x0), *zip(titles, images)]

    from lda_opt._plotting import pyplot

    plt = pyplot()

    n = len(cols)
    fig, ax = plt.subplots(2, n, figsize=(2.6 * n, 5.6))
    err_max = max(float(np.abs(im - truth).max()) for _, im in cols[1:]) or 1.0
    for j, (t, im) in enumerate(cols):
        ax[0, j].imshow(im, cmap="gray", vmin=0.0, vmax=max(1.0, float(truth.max())))
        ax[0, j].set_title(t, fontsize=9)
        if j == 0:
            ax[1, j].axis("off")
            ax[1, j].text(0.5, 0.5, f"|error|\n(common scale,\nmax {err_max:.3g})", ha="center", va="center",
                          fontsize=9, transform=ax[1, j].transAxes)
        else:
            ax[1, j].imshow(np.abs(im - truth), cmap="inferno", vmin=0.0, vmax=err_max)
        for a in ax[:, j]:
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle(f"{prob0['kind']} ({prob0.get('image')}), same instance", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    out_png.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    """The command line: exit 0, or 2 with one line on stderr for runs that do not compare."""
    p = argparse.ArgumentParser(prog="python -m lda_opt.experiments.compare", description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", help="lda-opt solve --out directories of the same instance")
    p.add_argument("--out", required=True, help="the PNG to write (a .json summary is written next to it)")
    args = p.parse_args(argv)
    try:
        s = compare_runs(args.dirs, args.out)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in s["runs"]:
        print(f"{r['label']:<28s} {r['psnr']:.2f} dB  (start {r['psnr_x0']:.2f} dB)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
