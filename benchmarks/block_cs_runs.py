"""Block-CS LDA-Net checkpoints side by side: whole-image validation and test PSNR.

The selection rule fixed in session 4, before the test images were looked at: of several
block-CS runs, ship the one with the best PSNR on the whole *validation images* (the
training config's ``data.val_images``, rocket and page, at ``--size`` x ``--size``, every
block, not the filtered training-style crops).  This
script measures that figure and the held-out test PSNR (``datasets.test_images``: camera,
astronaut, coins, moon, coffee) for each checkpoint, per image, with the training budget
stored in its metadata, and writes ``block_cs_runs.{json,md}``.

    python benchmarks/block_cs_runs.py build/runs/a/model.safetensors build/runs/b/model.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from lda_opt.experiments.learning import mean_metrics, reconstruct_images
from lda_opt.learning.config import TrainConfig
from lda_opt.learning.datasets import load_images, test_images
from lda_opt.learning.shipped import load_lda_net
from lda_opt.tasks import task_from_metadata

ROOT = Path(__file__).resolve().parents[1]


def score(path: str | Path, size: int = 132) -> dict:
    """Whole-image val and test PSNR (mean and per image) of one block-CS checkpoint."""
    net = load_lda_net(path)
    meta = net.checkpoint_metadata
    task = task_from_metadata(meta)
    if task.kind != "block-cs":
        raise ValueError(f"{path}: not a block-CS checkpoint (problem {task.kind!r})")
    training = meta["training"]
    cfg = TrainConfig.from_dict(training["config"])
    out = {"checkpoint": str(path), "phases": net.phases, "name": cfg.name,
           "budget": {k: training.get(k) for k in ("train_samples", "epochs", "steps", "seconds", "threads")}}
    vnames = list(cfg.data.val_images)
    timgs, tnames = test_images(task, size=size)
    for split, imgs, names in (("val", load_images(vnames, size=size), vnames), ("test", timgs, tnames)):
        m = task.measure(imgs.to(torch.float32))
        r = mean_metrics(reconstruct_images(net, m), m.to_image(m.truth))
        out[split] = {"psnr": r["psnr"], "ssim": r["ssim"], "images": names, "psnr_per_image": r["per_image"]["psnr"]}
    return out


def table(rows: list[dict]) -> str:
    lines = ["| run | K | training crops, steps, s | whole-image val PSNR | test PSNR | test per image |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        b = r["budget"]
        per = ", ".join(f"{n} {p:.2f}" for n, p in zip(r["test"]["images"], r["test"]["psnr_per_image"]))
        lines.append(f"| {r['name']} | {r['phases']} | {b['train_samples']}, {b['steps']}, {b['seconds']:.0f} | "
                     f"{r['val']['psnr']:.2f} | {r['test']['psnr']:.2f} | {per} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", help="block-CS LDA-Net checkpoints (.safetensors)")
    p.add_argument("--size", type=int, default=132, help="image size of val and test (default: the benchmark's 132)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--labels", nargs="+", default=None,
                   help="one row label per checkpoint (default: the config name in its metadata)")
    a = p.parse_args(argv)
    if a.labels is not None and len(a.labels) != len(a.checkpoints):
        p.error(f"--labels: {len(a.labels)} labels for {len(a.checkpoints)} checkpoints")
    torch.set_num_threads(a.threads)
    rows = []
    for i, c in enumerate(a.checkpoints):
        rows.append(score(c, a.size))
        if a.labels is not None:
            rows[-1]["name"] = a.labels[i]
        print(f"{rows[-1]['name']}: val {rows[-1]['val']['psnr']:.2f} dB, test {rows[-1]['test']['psnr']:.2f} dB", flush=True)
    best = max(rows, key=lambda r: r["val"]["psnr"])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"description": __doc__.splitlines()[0], "size": a.size, "selected_by_val": best["name"], "runs": rows}
    (out / "block_cs_runs.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    md = (f"# {doc['description']}\n\nProduced by `python benchmarks/block_cs_runs.py`. Images at {a.size} x {a.size}; "
          "val: the training config's validation images (whole images, every block). Selected by whole-image val: "
          f"**{best['name']}**.\n\n" + table(rows))
    (out / "block_cs_runs.md").write_text(md, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
