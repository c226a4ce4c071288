r"""How to start the phases that stair training appends (LDA Sec. 4.1 leaves it open).

LDA Sec. 4.1 trains ``K = 3`` phases, "then add[s] 2 more phases" with a warm start, but does
not say what step sizes ``alpha_k``, ``tau_k`` the new phases start from.
:meth:`lda_opt.learning.LDANet.grow` copies the last trained phase.  This script measures,
without any training, what each candidate rule does to a trained network: it appends
``m`` phases to a checkpoint's ``K`` by

* ``copy last``  -- ``(a_1, ..., a_K, a_K, ..., a_K)`` (:meth:`LDANet.grow`, ours),
* ``initial``    -- ``(a_1, ..., a_K, a0, ..., a0)`` with the config's starting ``alpha``, ``tau``,
* ``copy K-1``   -- ``(a_1, ..., a_K, a_{K-1}, ..., a_{K-1})``,
* ``insert K-1`` -- ``(a_1, ..., a_{K-1}, a_{K-1}, ..., a_{K-1}, a_K)``: the new phases go
  before the last one, which stays last,

and reports the PSNR of the grown network on the checkpoint's validation set (the data of its
training config) and on the held-out test images of ``benchmarks/block_cs.py`` / ``mri.py``.
A rule that loses PSNR at the start of a stage makes that stage spend its steps recovering.

Outputs ``grow_rules.json`` and ``grow_rules.md``.

Usage::

    python benchmarks/grow_rules.py                                     # the shipped checkpoints
    python benchmarks/grow_rules.py --checkpoints build/runs/mri_radial_20/model.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from lda_opt.experiments.learning import mean_metrics, reconstruct_images
from lda_opt.learning import TrainConfig, load_lda_net, shipped_checkpoints
from lda_opt.learning.datasets import test_images, training_data
from lda_opt.learning.net import NET_ALGORITHMS
from lda_opt.learning.train import evaluate

ROOT = Path(__file__).resolve().parent.parent


def grown(raw: torch.Tensor, rule: str, extra: int, initial: float) -> torch.Tensor:
    """The raw (log) per-phase values after appending ``extra`` phases by ``rule``."""
    rules = {
        "copy last": lambda: torch.cat([raw, raw[-1:].expand(extra)]),
        "initial": lambda: torch.cat([raw, torch.full((extra,), initial, dtype=raw.dtype)]),
        "copy K-1": lambda: torch.cat([raw, raw[-2:-1].expand(extra)]),
        "insert K-1": lambda: torch.cat([raw[:-1], raw[-2:-1].expand(extra), raw[-1:]]),
    }
    if rule not in rules:
        raise ValueError(f"rule must be one of {sorted(rules)}; got {rule!r}")
    if raw.shape[0] < 2 and rule != "copy last":
        raise ValueError(f"rule {rule!r} needs a network with at least 2 phases")
    return rules[rule]()


RULES = ("copy last", "initial", "copy K-1", "insert K-1")


def evaluate_rules(path: Path, extras: list[int], test_size: int = 132) -> dict:
    net = load_lda_net(path)
    cfg = TrainConfig.from_dict(net.checkpoint_metadata["training"]["config"])
    task = cfg.task.build()
    val = training_data(cfg).val
    if cfg.task.kind == "mri":
        imgs, _ = test_images(task, n=8, max_phase=cfg.data.max_phase)
    else:
        imgs, _ = test_images(task, size=test_size)
    test = task.measure(imgs)
    names = NET_ALGORITHMS[net.algorithm]
    if set(names) != {"alpha", "tau"}:
        raise ValueError(f"{path}: grow rules are measured for algorithm 'lda'; got {net.algorithm!r}")
    base = {n: getattr(net, f"raw_{n}").detach().clone() for n in names}
    initial = {"alpha": math.log(cfg.net.alpha), "tau": math.log(cfg.net.tau)}

    def score() -> dict:
        with torch.no_grad():
            v = evaluate(net, val)["psnr"]  # as in the training log
            t = mean_metrics(reconstruct_images(net, test), imgs)["psnr"]
        return {"val_psnr": v, "test_psnr": t}

    out = {"checkpoint": str(path), "name": cfg.name, "phases": net.phases, "trained": score(), "grown": []}
    for extra in extras:
        for rule in RULES:
            for n in names:
                setattr(net, f"raw_{n}", torch.nn.Parameter(grown(base[n], rule, extra, initial[n])))
            out["grown"].append({"rule": rule, "extra": extra, "phases": net.phases, **score()})
    return out


def _table(results: list[dict]) -> str:
    lines = ["# Appending phases to a trained LDA-Net, no training (PSNR dB, val / test)", ""]
    for r in results:
        lines += [f"## {r['name']} (K = {r['phases']}, `{r['checkpoint']}`)", "",
                  f"Trained K = {r['phases']}: val {r['trained']['val_psnr']:.2f}, test {r['trained']['test_psnr']:.2f}",
                  "", "| phases added | " + " | ".join(RULES) + " |", "|---|" + "---|" * len(RULES)]
        for extra in sorted({g["extra"] for g in r["grown"]}):
            row = {g["rule"]: g for g in r["grown"] if g["extra"] == extra}
            lines.append(f"| +{extra} | " + " | ".join(
                f"{row[k]['val_psnr']:.2f} / {row[k]['test_psnr']:.2f}" for k in RULES) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", nargs="*", default=None, help="LDA-Net checkpoints (default: the shipped ones)")
    p.add_argument("--extra", type=int, nargs="+", default=[2, 4, 8], help="phases to append")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--test-size", type=int, default=132, help="block CS test image side (as benchmarks/block_cs.py)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if any(e < 1 for e in args.extra):
        p.error("--extra: every value must be >= 1")
    torch.set_num_threads(args.threads)
    paths = [Path(c) for c in args.checkpoints] if args.checkpoints else [c[-1] for c in shipped_checkpoints()]
    t0 = time.perf_counter()
    results = [evaluate_rules(path, args.extra, args.test_size) for path in paths]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "grow_rules.json").write_text(json.dumps({"torch_threads": args.threads, "seconds": time.perf_counter() - t0,
                                                     "results": results}, indent=1) + "\n", encoding="utf-8")
    (out / "grow_rules.md").write_text(_table(results) + "\n", encoding="utf-8")
    print(_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
