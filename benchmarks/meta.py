r"""Meta-learning vs conventional training (meta-LDA Sec. 5.3-5.4) in small form.

Seen tasks: radial and Cartesian masks at 10 / 20 / 30 % (40 x 40 complex random-ellipse
phantoms: 40 rows make Cartesian 10/20/30 % exactly 4/8/12 lines; 32 x 32 cannot meet 20 %
and 30 % within the mask's 0.01 tolerance).  Unseen tasks: radial 15 / 25 / 40 % and a
variable-density mask at 20 %.

Arms, the same network (``LDANet(algorithm="meta-lda")``, ``configs/meta_small.json``), the same
samples (every task's ``data.train`` phantoms), the same stair plan and the same number of
theta and omega Adam steps:

* **meta**: Algorithm 2 with one ``omega_i`` per task (``kappa_i = sigmoid(omega_i)``), each
  task's samples split into ``D_val`` (4) and ``D_tr`` (4), the penalty (18) with the paper's
  ``lam0 = 1e-5``, ``nu_lam = 1.001``; 2 cross-task batches per epoch, one round (one
  theta-step, one omega-step) per batch;
* **conventional**: the union of the tasks, one ``kappa`` (a single shared learned
  ``omega``), ``lam = 0`` and ``D_tr`` merged into ``D_val`` (the paper's conventional arm
  merges them), batches of twice the size so that the number of steps is the same;
* **multi-task, lam = 0** (ablation): as conventional but one ``omega_i`` per task -- it
  separates the per-task ``kappa`` from the D_tr / D_val split and the penalty of (18).

Unseen tasks (Sec. 5.4): theta frozen; meta fits its ``omega`` on 16 samples of the task
(:func:`lda_opt.learning.meta.adapt_omega`, started at :func:`~lda_opt.learning.meta.initial_omega`);
the conventional net is reported as it is (its one ``kappa``) and with the same adaptation of
its ``kappa`` (which separates adapting a weight from meta-training theta).  Test: 8 held-out
phantoms (seed ``MRI_TEST_SEED``) and the Shepp-Logan phantom per task; PSNR (peak
``max|x*|``) and SSIM of the magnitudes.

Outputs: ``meta.json`` (every task, both arms, kappa, the budget of each arm), ``meta.md``
(the table), ``meta.png`` (PSNR per task and kappa per ratio).

Usage::

    python benchmarks/meta.py                       # about 6-10 CPU minutes, 1 thread
    python benchmarks/meta.py --quick --out /tmp/q  # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from lda_opt.data import random_ellipses
from lda_opt.learning import load_config
from lda_opt.learning.datasets import MRI_TEST_SEED, test_images
from lda_opt.learning.meta import (
    MetaTask,
    adapt_omega,
    evaluate_task,
    initial_omega,
    load_meta_net,
)
from lda_opt.learning.train import train
from lda_opt.metrics import psnr

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "meta_small.json"
UNSEEN = (MetaTask(mask="radial", ratio=0.15), MetaTask(mask="radial", ratio=0.25), MetaTask(mask="radial", ratio=0.4),
          MetaTask(mask="variable_density", ratio=0.2))
#: the adaptation samples of an unseen task: phantoms of this seed (never trained or tested on)
ADAPT_SEED = 4242
ADAPT = {"samples": 16, "epochs": 10, "batch_size": 8, "lr": 0.05}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def configs(quick: bool):
    """The meta config and its conventional counterpart (same budget)."""
    meta = load_config(CONFIG)
    if quick:
        meta = meta.with_overrides(name="meta_small_quick", data={"train": 4, "val": 1},
                                   net={"depth": 2}, train={"phases": 2, "first_phases": 2, "epochs_first": 2},
                                   meta={"val_per_task": 2, "delta_tol": 0.00094})
    n, n_val, J = meta.data.train, meta.meta.n_val(meta.data.train), meta.train.batch_size
    if n != 2 * n_val:
        raise ValueError("the conventional arm doubles the batch: the config needs data.train = 2 meta.val_per_task")
    conv = meta.with_overrides(name=meta.name + "_conventional", train={"batch_size": 2 * J},
                               meta={"omega": "shared", "lam0": 0.0, "val_per_task": n})
    multi = conv.with_overrides(name=meta.name + "_multitask", meta={"omega": "per_task"})
    return meta, conv, multi


def _measure(task: MetaTask, base, truth):
    return task.task_config(base).build().measure(truth)


def _score(net, kappa, m) -> dict:
    r = evaluate_task(net, m, kappa)
    return {"psnr": r["psnr"], "ssim": r["ssim"], "kappa": kappa}


def run(args) -> dict:
    torch.set_num_threads(1)
    meta_cfg, conv_cfg, multi_cfg = configs(args.quick)
    runs = Path(args.runs)
    arms = {}
    for key, cfg in (("meta", meta_cfg), ("conventional", conv_cfg), ("multitask", multi_cfg)):
        t0 = time.perf_counter()
        _log(f"training {cfg.name} ...")
        summary = train(cfg, runs / cfg.name, quiet=True, resume=(runs / cfg.name / "state.safetensors").is_file())
        net, info = load_meta_net(runs / cfg.name / "model.safetensors")
        arms[key] = {"cfg": cfg, "summary": summary, "net": net, "info": info, "wall": time.perf_counter() - t0}
    base = meta_cfg.task
    n_test = 1 if args.quick else 8
    truth, names = test_images(base.build(), n=n_test, dtype=torch.float32)
    seen = list(meta_cfg.meta.tasks)
    adapt = dict(ADAPT, samples=4, epochs=1) if args.quick else ADAPT
    adapt_truth = random_ellipses(adapt["samples"], size=tuple(base.shape), seed=ADAPT_SEED, dtype=torch.complex64)
    rows = []
    for task in seen + list(UNSEEN):
        is_seen = task in seen
        m = _measure(task, base, truth)
        row = {"task": task.name, "mask": task.mask, "ratio": task.ratio, "seen": is_seen,
               "x0": {"psnr": float(psnr(m.x0, m.truth, None).mean())}}
        conv_net, conv_omega = arms["conventional"]["net"], arms["conventional"]["info"]["omega"][0]
        if is_seen:
            i = seen.index(task)
            for key in ("meta", "multitask"):
                row[key] = _score(arms[key]["net"], arms[key]["info"]["kappa"][i], m)
            row["conventional"] = _score(conv_net, arms["conventional"]["info"]["kappa"][0], m)
        else:
            ma = _measure(task, base, adapt_truth)

            def adapted(net, w0, ma=ma, m=m):
                t0 = time.perf_counter()
                w, losses = adapt_omega(net, ma, w0, epochs=adapt["epochs"], batch_size=adapt["batch_size"],
                                        lr=adapt["lr"], seed=0)
                return _score(net, float(torch.sigmoid(torch.tensor(w))), m) | {
                    "omega_init": w0, "omega": w, "adapt_loss": losses, "adapt_seconds": time.perf_counter() - t0}

            for key in ("meta", "multitask"):
                row[key] = adapted(arms[key]["net"], initial_omega(seen, arms[key]["info"]["omega"], task))
            row["conventional"] = _score(conv_net, float(torch.sigmoid(torch.tensor(conv_omega))), m)
            row["conventional_adapted"] = adapted(conv_net, conv_omega)
        row["margin_db"] = row["meta"]["psnr"] - row["conventional"]["psnr"]
        rows.append(row)
        _log(f"{task.name:>20}: x0 {row['x0']['psnr']:.2f}  meta {row['meta']['psnr']:.2f}  "
             f"conventional {row['conventional']['psnr']:.2f}  ({row['margin_db']:+.2f} dB)")
    steps = (adapt["samples"] + adapt["batch_size"] - 1) // adapt["batch_size"] * adapt["epochs"]
    budget = {}
    for key, a in arms.items():
        b = a["summary"]["budget"]
        budget[key] = {"theta_adam_steps": b["theta_steps"], "omega_adam_steps": b["omega_steps"],
                       "gradient_evaluations": b["evaluations"], "epochs": b["epochs"],
                       "samples_per_task": a["cfg"].data.train,
                       "D_val_per_task": b["val_samples_per_task"], "D_tr_per_task": b["train_samples_per_task"],
                       "tasks": len(seen), "omega_entries": len(a["info"]["omega"]),
                       "lam0": a["cfg"].meta.lam0, "batch_per_task": a["cfg"].train.batch_size,
                       "train_seconds": b["seconds"], "threads": 1,
                       "unseen_adaptation": {"samples": adapt["samples"], "epochs": adapt["epochs"],
                                             "omega_adam_steps": steps, "theta": "frozen"}}
    return {"description": __doc__.split("\n\n")[0], "quick": args.quick, "shape": list(base.shape),
            "test_images": names, "test_seed": MRI_TEST_SEED, "adaptation": adapt, "budget": budget,
            "configs": {k: a["cfg"].to_dict() for k, a in arms.items()},
            "training_log": {k: {"val_psnr": [r["val_psnr"] for r in a["summary"]["epochs"]],
                                 "kappa": [r["kappa"] for r in a["summary"]["epochs"]],
                                 "grad_theta_sq": [r["grad_theta_sq"] for r in a["summary"]["epochs"]],
                                 "grad_omega_sq": [r["grad_omega_sq"] for r in a["summary"]["epochs"]],
                                 "penalty": [r["penalty"] for r in a["summary"]["epochs"]]}
                             for k, a in arms.items()},
            "tasks": rows}


def markdown(doc: dict) -> str:
    b = doc["budget"]
    head = (f"Meta-learning vs conventional (meta-LDA Sec. 5, small form: {doc['shape'][0]}x{doc['shape'][1]} "
            f"phantoms, {len(doc['test_images'])} test images per task; PSNR dB / SSIM).")
    cols = ("| task | seen | zero-filling | meta | conventional | margin (dB) | conventional, kappa adapted | "
            "multi-task, lam = 0 | kappa meta / conv. |")
    lines = [head, "", cols, "|---|---|---|---|---|---|---|---|---|"]
    cell = lambda r, key: f"{r[key]['psnr']:.2f} / {r[key]['ssim']:.3f}" if key in r else "-"
    for r in doc["tasks"]:
        lines.append(f"| {r['task']} | {'yes' if r['seen'] else 'no'} | {r['x0']['psnr']:.2f} | {cell(r, 'meta')} | "
                     f"{cell(r, 'conventional')} | {r['margin_db']:+.2f} | {cell(r, 'conventional_adapted')} | "
                     f"{cell(r, 'multitask')} | {r['meta']['kappa']:.4f} / {r['conventional']['kappa']:.4f} |")
    m, c, t = b["meta"], b["conventional"], b["multitask"]
    lines += ["", (f"Budget (each arm, 1 thread): {m['tasks']} tasks x {m['samples_per_task']} samples; "
                   f"meta: D_val {m['D_val_per_task']} + D_tr {m['D_tr_per_task']} per task, lam0 = {m['lam0']:g}, "
                   f"{m['theta_adam_steps']} theta / {m['omega_adam_steps']} omega Adam steps, "
                   f"{m['gradient_evaluations']} gradient evaluations of (18), {m['train_seconds']:.0f} s; "
                   f"conventional: all {c['D_val_per_task']} samples per task in one loss, one kappa, "
                   f"{c['theta_adam_steps']} theta / {c['omega_adam_steps']} kappa Adam steps, "
                   f"{c['train_seconds']:.0f} s; multi-task: the same with one omega per task, "
                   f"{t['theta_adam_steps']} / {t['omega_adam_steps']} steps, {t['train_seconds']:.0f} s. "
                   f"Unseen tasks: omega (kappa) fitted with theta frozen on {m['unseen_adaptation']['samples']} "
                   f"samples, {m['unseen_adaptation']['omega_adam_steps']} Adam steps. Seconds are wall time on "
                   "a shared machine.")]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["tasks"]
    fig, ax = plt.subplots(1, 2, figsize=(12, 3.8))
    xs = range(len(rows))
    w = 0.16
    for k, (key, lab) in enumerate((("x0", "zero-filling"), ("meta", "meta"), ("conventional", "conventional"),
                                    ("conventional_adapted", "conv., kappa adapted"),
                                    ("multitask", "multi-task, lam = 0"))):
        ys = [r[key]["psnr"] if key in r else float("nan") for r in rows]
        ax[0].bar([x + (k - 2) * w for x in xs], ys, w, label=lab)
    ax[0].set_xticks(list(xs))
    ax[0].set_xticklabels([r["task"] + ("" if r["seen"] else "*") for r in rows], rotation=40, ha="right", fontsize=7)
    lo = min(r["x0"]["psnr"] for r in rows) - 1
    ax[0].set_ylim(bottom=lo)
    ax[0].set_ylabel("test PSNR (dB)")
    ax[0].set_title("* unseen (omega adapted, theta frozen)", fontsize=8)
    ax[0].legend(fontsize=7)
    for mask, mk in (("radial", "o"), ("cartesian", "s"), ("variable_density", "^")):
        sel = sorted((r["ratio"], r["meta"]["kappa"]) for r in rows if r["mask"] == mask)
        if sel:
            ax[1].plot([s[0] for s in sel], [s[1] for s in sel], mk + "-", label=f"meta, {mask}")
    ax[1].axhline(rows[0]["conventional"]["kappa"], color="gray", ls="--", label="conventional (one kappa)")
    ax[1].set_xlabel("sampling ratio")
    ax[1].set_ylabel("kappa = sigmoid(omega)")
    ax[1].legend(fontsize=7)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.28, top=0.9, wspace=0.25)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny data, 2 epochs")
    p.add_argument("--out", default=str(RESULTS), help="output folder (JSON, Markdown, PNG)")
    p.add_argument("--runs", default=str(ROOT / "build" / "runs"), help="training run folders (reused / resumed)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = run(args)
    tag = "_quick" if args.quick else ""
    (out / f"meta{tag}.json").write_text(json.dumps(doc, indent=1, allow_nan=True) + "\n")
    (out / f"meta{tag}.md").write_text(markdown(doc))
    plot(doc, out / f"meta{tag}.png")
    _log((out / f"meta{tag}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
