"""U-LDA transfer learning in small form (U-LDA Tables 1-3, Sec. 5.2), offline on the CPU.

Two experiments, each a Step 1 (eq. 3.2) on source domains and, for every target and every
target-set size N, four arms at the same Step-2 budget:

* **cross-ratio** (Table 2): sources = Cartesian 10 %, 20 %, 30 % on random-ellipse phantoms
  (M samples each); targets = Cartesian 15 % and 25 % on phantoms, N = 5, 20, 100;
* **cross-domain** (Tables 1 and 3): sources = phantoms and crops of the bundled natural
  training-split images (Cartesian 20 %); target = the face photographs of scikit-image's
  ``lfw_subset`` (a natural-image family in neither source; 60 train / 30 test faces),
  Cartesian 20 %, N = 5, 20, 60 (60 is all the training faces there are).

Arms (every learned arm: the same ELDA network ``h o g``, T phases, the same number of Adam
steps ``--steps`` with batches of ``min(N, --batch)``, the same learning rate):

* ``U-LDA``: Step 2 (eq. 3.3), g and the phases frozen, a new adapter trained;
* ``LDA scratch``: the same network from a fresh seeded draw, everything trained on the N
  samples alone (``transfer.step2 = "scratch"``);
* ``fine-tune g``: g, a new adapter and the phases all trained from the Step-1 values
  (``transfer.step2 = "finetune"``);
* ``TV (exact)``: exact TV (PDHG) with the weight of a grid that is best on the N training
  samples (so it sees the same data), applied to the test images.

Images are 20 x 20 (every ratio is a whole number of Cartesian lines at this size and the
CPU budget of ~10-15 minutes allows it; the paper uses 256 x 256), the network is the paper's
(g: 4 complex 3x3 convolutions, 16 channels; h: one), T = 5 phases (the paper: 15).  Test
sets: 16 held-out phantoms (seed ``MRI_TEST_SEED``) / the 30 test faces.  Writes
``benchmarks/results/transfer.{json,md,png}`` (``transfer_quick.*`` with ``--quick``).

Usage::

    python benchmarks/transfer.py              # ~15 CPU minutes alone (one thread; 50 min wall on a loaded machine)
    python benchmarks/transfer.py --quick      # smoke run, tiny networks (~1 minute)
    python benchmarks/transfer.py --replot     # the .md / .png again from the .json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from lda_opt.experiments.learning import mean_metrics, reconstruct_images
from lda_opt.learning import TrainConfig, load_lda_net, train
from lda_opt.learning.transfer import domain_measurement
from lda_opt.metrics import psnr

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("U-LDA", "LDA scratch", "fine-tune g", "TV (exact)")
STEP2 = {"U-LDA": "adapter", "LDA scratch": "scratch", "fine-tune g": "finetune"}
#: the TV weights tried first (the grid grows past an end that is best, :func:`tv_arm`)
KAPPAS = (3e-3, 1e-2, 3e-2)


def _cart(name: str, pct: int, images: str = "phantoms", **kw) -> dict:
    return {"name": name, "images": images, "mask": "cartesian", "ratio": pct / 100, **kw}


def experiments(quick: bool) -> dict:
    """The two experiments: sources, targets (domain dicts) and the N values."""
    ns = [2, 4] if quick else [5, 20, 100]
    return {
        "cross-ratio": {"sources": [_cart(f"cartesian_{p}", p) for p in (10, 20, 30)],
                        "targets": [_cart("cartesian_15", 15, seed=11), _cart("cartesian_25", 25, seed=12)],
                        "N": ns, "n_test": 4 if quick else 16},
        "cross-domain": {"sources": [_cart("phantoms_20", 20), _cart("natural_20", 20, "natural", seed=3)],
                         "targets": [_cart("faces_20", 20, "faces", seed=0)],
                         "N": [2, 4] if quick else [5, 20, 60], "n_test": 4 if quick else 30},
    }


def base_config(args, name: str) -> dict:
    width, depth, phases = (4, 2, 2) if args.quick else (16, 4, args.phases)
    return {"name": name, "seed": 0, "task": {"kind": "mri", "shape": [20, 20], "mask": "cartesian", "ratio": 0.2},
            "net": {"algorithm": "elda", "width": width, "depth": depth},
            "train": {"phases": phases, "first_phases": phases, "epochs_stage": 0, "lr": args.lr, "threads": 1}}


def run(cfg: TrainConfig, out: Path) -> dict:
    """Train ``cfg`` into ``out``, or reuse the complete run there with the same config."""
    log_path = out / "log.json"
    if log_path.is_file():
        log = json.loads(log_path.read_text())
        if log.get("config") == cfg.to_dict() and log.get("complete"):
            return log
        same = log.get("config") == cfg.to_dict() and (out / "state.safetensors").is_file()
        return train(cfg, out, resume=same, quiet=True)
    return train(cfg, out, quiet=True)


def test_metrics(net, m) -> dict:
    rec = mean_metrics(reconstruct_images(net, m, batch_size=32), m.truth)
    rec.pop("per_image")
    return rec


def step1(args, exp: str, spec: dict, runs: Path) -> tuple[Path, dict]:
    d = base_config(args, f"{exp}_step1")
    m = 4 if args.quick else args.m
    d["train"].update(mode="transfer_step1", epochs_first=1 if args.quick else args.epochs1, batch_size=args.batch1)
    d["transfer"] = {"sources": [dict(s, train=m, val=2 if args.quick else 4) for s in spec["sources"]],
                     "alpha": 0.01, "init": "average", "init_epochs": 1 if args.quick else args.init_epochs}
    cfg = TrainConfig.from_dict(d)
    out = runs / exp / "step1"
    t0 = time.perf_counter()
    log = run(cfg, out)
    # Table 2's source columns: h_i o g on held-out images of every source domain
    from lda_opt.learning.transfer import load_transfer_net

    src = {}
    for dom in cfg.transfer.sources:
        net = load_transfer_net(out / f"adapter_{dom.name}.safetensors")
        src[dom.name] = test_metrics(net, domain_measurement(cfg, dom, "test", spec["n_test"]))
    info = {"budget": log["budget"], "init": {k: v for k, v in log["init"].items() if k != "init_runs"} |
            {"runs": {n: r["budget"] for n, r in log["init"].get("init_runs", {}).items()}},
            "parameters": log["parameters"], "source_test": src, "seconds_wall": time.perf_counter() - t0,
            "config": cfg.to_dict()}
    return out / "g.safetensors", info


def step2_arm(args, exp: str, target: dict, n: int, arm: str, g: Path, runs: Path, test) -> dict:
    batch = min(n, args.batch)
    per_epoch = -(-n // batch)
    steps = 4 if args.quick else args.steps
    if steps % per_epoch:
        raise ValueError(f"--steps {steps} must be a multiple of ceil(N / batch) = {per_epoch}")
    d = base_config(args, f"{exp}_{target['name']}_{STEP2[arm]}_N{n}")
    d["train"].update(mode="transfer_step2", epochs_first=steps // per_epoch, batch_size=batch)
    d["transfer"] = {"target": dict(target, train=n, val=2 if args.quick else 4), "alpha": 0.01,
                     "g": str(g), "step2": STEP2[arm]}
    cfg = TrainConfig.from_dict(d)
    out = runs / exp / cfg.name
    log = run(cfg, out)
    rec = test_metrics(load_lda_net(out / "model.safetensors"), test)
    rec["budget"] = log["budget"]
    return rec


def tv_arm(cfg: TrainConfig, target: dict, n: int, test, cache_file: Path) -> dict:
    """Exact TV (PDHG at its default tolerance) with the weight of the grid that is best (PSNR)
    on the N training samples; the grid grows by factors of 3 past a best end (twice at most).
    Every solve is cached in ``cache_file`` (JSON)."""
    from lda_opt.algorithms.tv_exact import tv_exact
    from lda_opt.learning.transfer import DomainConfig

    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    fit = domain_measurement(cfg, DomainConfig(**dict(target, train=n)), "train")
    t0 = time.perf_counter()

    def solve(m, kappa: float, key: str) -> dict:
        if key not in cache:
            res = tv_exact(m.operator, m.y, kappa, m.x0)
            rec = mean_metrics(res.x, m.truth)
            rec.pop("per_image")
            cache[key] = rec | {"converged": int(res.converged.sum()), "samples": int(res.converged.numel()),
                                "iterations_max": int(res.iterations.max())}
            cache_file.write_text(json.dumps(cache, indent=1) + "\n")
        return cache[key]

    grid = {k: solve(fit, k, f"{target['name']}|train{n}|{k:.6g}") for k in KAPPAS}
    for _ in range(2):
        ks = sorted(grid)
        best = max(ks, key=lambda k: grid[k]["psnr"])
        if best not in (ks[0], ks[-1]):
            break
        new = best / 3 if best == ks[0] else best * 3
        grid[new] = solve(fit, new, f"{target['name']}|train{n}|{new:.6g}")
    ks = sorted(grid)
    best = max(ks, key=lambda k: grid[k]["psnr"])
    rec = dict(solve(test, best, f"{target['name']}|test|{best:.6g}"))
    rec["budget"] = {"kappa": best, "chosen_on": f"the N = {n} training samples (best PSNR)", "grid": ks,
                     "train_psnr": [grid[k]["psnr"] for k in ks], "bracketed": best not in (ks[0], ks[-1]),
                     "pdhg": "default PDHGSettings (tol 1e-6, max_iter 20000)", "seconds": time.perf_counter() - t0}
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=str(ROOT / "build" / "runs" / "transfer"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--quick", action="store_true", help="smoke run: tiny networks, 2-4 samples")
    p.add_argument("--phases", type=int, default=5, help="T (paper: 15)")
    p.add_argument("--m", type=int, default=48, help="samples per source domain (M)")
    p.add_argument("--epochs1", type=int, default=10, help="Step-1 epochs")
    p.add_argument("--init-epochs", type=int, default=4, help="epochs of each g_i (the averaged init)")
    p.add_argument("--batch1", type=int, default=8, help="Step-1 batch per domain")
    p.add_argument("--steps", type=int, default=60, help="Adam steps of every Step-2 arm")
    p.add_argument("--batch", type=int, default=5, help="Step-2 batch (min(N, batch))")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam rate of every run")
    p.add_argument("--only", choices=list(experiments(False)), default=None)
    p.add_argument("--replot", action="store_true", help="rewrite the .md and .png from the existing .json")
    args = p.parse_args(argv)
    tag = "_quick" if args.quick else ""
    if args.replot:
        write(json.loads((Path(args.out) / f"transfer{tag}.json").read_text()), Path(args.out), tag)
        return 0
    torch.set_num_threads(1)
    runs = Path(args.runs + ("_quick" if args.quick else ""))
    t_all = time.perf_counter()
    results = {"settings": {"image": [20, 20], "mask": "cartesian", "phases": 2 if args.quick else args.phases,
                            "g": "4 complex 3x3 convs, 16 channels, smoothed ReLU" if not args.quick else "2 x 4 ch",
                            "adapter": "1 complex 3x3 conv", "loss": "(3.2a)/(3.3a), alpha = 0.01",
                            "step2_budget": {"adam_steps": 4 if args.quick else args.steps,
                                             "batch": f"min(N, {args.batch})", "lr": args.lr},
                            "step1": {"M": 4 if args.quick else args.m, "epochs": 1 if args.quick else args.epochs1,
                                      "batch_per_domain": args.batch1, "init_epochs": args.init_epochs},
                            "threads": 1, "quick": args.quick},
               "experiments": {}}
    for exp, spec in experiments(args.quick).items():
        if args.only and exp != args.only:
            continue
        g, s1 = step1(args, exp, spec, runs)
        print(f"{exp} step 1: {s1['budget']['adam_steps']} Adam steps, {s1['budget']['seconds']:.0f} s; "
              + ", ".join(f"{k} {v['psnr']:.2f} dB" for k, v in s1["source_test"].items()), file=sys.stderr, flush=True)
        cfg = TrainConfig.from_dict(s1["config"])
        targets = {}
        for target in spec["targets"]:
            from lda_opt.learning.transfer import DomainConfig

            test = domain_measurement(cfg, DomainConfig(**dict(target, train=max(spec["N"]))), "test", spec["n_test"])
            row = {"N": spec["N"], "n_test": spec["n_test"],
                   "zero_filling": float(psnr(test.x0, test.truth).mean()), "arms": {a: {} for a in ARMS}}
            for n in spec["N"]:
                for arm in ARMS[:3]:
                    row["arms"][arm][str(n)] = step2_arm(args, exp, target, n, arm, g, runs, test)
                row["arms"]["TV (exact)"][str(n)] = tv_arm(cfg, target, n, test, runs / exp / "tv_cache.json")
                print(f"{exp} {target['name']} N={n}: " + ", ".join(
                    f"{a} {row['arms'][a][str(n)]['psnr']:.2f}" for a in ARMS), file=sys.stderr, flush=True)
            targets[target["name"]] = row
        results["experiments"][exp] = {"sources": [s["name"] for s in spec["sources"]], "step1": s1,
                                       "targets": targets}
    results["seconds_total"] = time.perf_counter() - t_all
    write(results, Path(args.out), tag)
    return 0


def write(results: dict, out: Path, tag: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"transfer{tag}.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["# U-LDA transfer learning, small form (U-LDA Tables 1-3)", "",
             ("`python benchmarks/transfer.py`: 20 x 20 Cartesian MRI, T = "
             f"{results['settings']['phases']} ELDA phases, every learned arm "
             f"{results['settings']['step2_budget']['adam_steps']} Adam steps on the N target samples "
             f"(batch {results['settings']['step2_budget']['batch']}); TV: exact (PDHG), weight best on the N "
             "training samples.  Test PSNR (dB) / SSIM, mean over the held-out test images."), "",
             "| experiment | target | N | zero-filling | " + " | ".join(ARMS) + " |",
             "|---|---|---|---|" + "---|" * len(ARMS)]
    for exp, e in results["experiments"].items():
        for tname, row in e["targets"].items():
            for n in row["N"]:
                cells = []
                best = max(row["arms"][a][str(n)]["psnr"] for a in ARMS)
                for a in ARMS:
                    r = row["arms"][a][str(n)]
                    c = f"{r['psnr']:.2f} / {r['ssim']:.3f}"
                    cells.append(f"**{c}**" if r["psnr"] == best else c)
                lines.append(f"| {exp} | {tname} | {n} | {row['zero_filling']:.2f} | " + " | ".join(cells) + " |")
    verdict = []
    for exp, e in results["experiments"].items():
        for tname, row in e["targets"].items():
            gaps = {n: row["arms"]["U-LDA"][str(n)]["psnr"] - row["arms"]["LDA scratch"][str(n)]["psnr"]
                    for n in row["N"] if n <= 20}
            verdict.append(f"{tname} " + ", ".join(f"N={n}: {g:+.2f} dB" for n, g in gaps.items()))
    lines += ["", "U-LDA minus LDA scratch for N <= 20 (the issue's target: positive on every target): "
              + "; ".join(verdict) + "."]
    lines += ["", "Step 1 (the sources, h_i o g on their own held-out test images):", ""]
    for exp, e in results["experiments"].items():
        s1 = e["step1"]
        src = ", ".join(f"{k} {v['psnr']:.2f} dB" for k, v in s1["source_test"].items())
        lines.append(f"- {exp}: {s1['budget']['adam_steps']} Adam steps x {s1['budget']['domains']} domains "
                     f"({s1['budget']['seconds']:.0f} s) after the averaged init; {src}")
    lines.append(f"\nTotal {results['seconds_total'] / 60:.1f} min (one thread).")
    (out / f"transfer{tag}.md").write_text("\n".join(lines) + "\n")
    plot(results, out / f"transfer{tag}.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(exp, t, row) for exp, e in results["experiments"].items() for t, row in e["targets"].items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (exp, t, row) in zip(axes[0], panels):
        for a, mk in zip(ARMS, "os^d"):
            ax.plot(row["N"], [row["arms"][a][str(n)]["psnr"] for n in row["N"]], marker=mk, label=a)
        ax.axhline(row["zero_filling"], color="gray", ls=":", lw=1, label="zero-filling")
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(row["N"], [str(n) for n in row["N"]])
        ax.set_xlabel("N (target training samples)")
        ax.set_ylabel("test PSNR (dB)")
        ax.set_title(f"{exp}: {t}")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
