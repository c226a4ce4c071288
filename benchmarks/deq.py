r"""Memory and time of one MOL training step: the DEQ (implicit backward) vs the same map unrolled.

For ``n`` in 5, 20, 50 forward iterations (``kappa_fwd = 0``: exactly ``n``) one training step
(forward, loss ``1/2 ||x - truth||^2``, backward) of the same :class:`~lda_opt.learning.mol.MOLNet`
(complex :class:`~lda_opt.nets.MOLCNN` width 16, depth 4, radial 20 % MRI on 64 x 64
phantoms, batch 4, float32) with

* ``deq``: Algorithm 1 without a graph, the implicit backward of Algorithm 2 (at most ``n``
  VJP iterations, supplement stop rule ``kappa_bwd = 1e-4``);
* ``unrolled``: autograd through the ``n`` iterations.

Measured, and said which in the JSON:

* ``saved_mb``: the bytes of the tensors autograd saves for backward, counted by
  ``torch.autograd.graph.saved_tensors_hooks`` (``graph_mb``: those saved by the forward,
  i.e. alive at the start of the backward; ``saved_mb``: forward and backward together);
* ``peak_rss_mb``: the peak RSS of a fresh subprocess running one step (``VmHWM``, reset
  after building the network and the data; ``rss_delta_mb``: minus the RSS just before the
  step, i.e. the step's own peak; ``ru_maxrss_mb`` beside it; tracemalloc does not see
  torch's allocator);
* on CUDA (``--device cuda``): ``cuda_peak_mb`` = ``torch.cuda.max_memory_allocated``;
* ``seconds``: median wall time of ``--repeats`` steps.

Target (issue 17): DEQ memory at 50 iterations <= 1.1 x its memory at 5.  Writes
``deq.json`` and ``deq.png`` (``deq_quick.*`` with ``--quick``: 16 x 16, n = 2, 4, 8).

Usage::

    python benchmarks/deq.py                 # ~2 CPU minutes
    python benchmarks/deq.py --quick --out /tmp/q
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import environment, log, output_dir

from lda_opt.learning.deq import DEQConfig
from lda_opt.learning.mol import MOLNet
from lda_opt.nets import MOLCNN
from lda_opt.nets.mol import identity_init_
from lda_opt.tasks import MRITask

ITERS = (5, 20, 50)
QUICK_ITERS = (2, 4, 8)
MODES = ("deq", "unrolled")


def _setup(n: int, mode: str, size: int, device: str):
    torch.manual_seed(0)
    cnn = MOLCNN(1, 16, 4, complex=True)
    identity_init_(cnn, 0.5, 0.05, generator=torch.Generator().manual_seed(0))
    deq = DEQConfig(kappa_fwd=0.0, max_fwd=n, max_bwd=n, backward="implicit" if mode == "deq" else "unrolled")
    net = MOLNet(cnn, deq=deq).to(device)
    from lda_opt.data import random_ellipses

    truth = random_ellipses(4, size=(size, size), seed=3, dtype=torch.complex64, max_phase=1.0).to(device)
    m = MRITask(0.2, shape=(size, size)).measure(truth)
    return net, m


def _step(net, m):
    x, _ = net(net.problem(m.fidelity()), m.x0)
    loss = 0.5 * (x - m.truth).abs().square().sum()
    net.zero_grad(set_to_none=True)
    loss.backward()
    return float(loss.detach())


def measure(n: int, mode: str, size: int, device: str, repeats: int) -> dict:
    """The in-process measurements of one setting (saved bytes, time, CUDA peak)."""
    net, m = _setup(n, mode, size, device)
    graph, total = 0, 0
    state = {"backward": False}

    def pack(t):
        nonlocal graph, total
        b = t.numel() * t.element_size()
        total += b
        if not state["backward"]:
            graph += b
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x, res = net(net.problem(m.fidelity()), m.x0)
        state["backward"] = True
        (0.5 * (x - m.truth).abs().square().sum()).backward()
    bwd = net.last_backward.get("iterations")
    out = {"graph_mb": graph / 2**20, "saved_mb": total / 2**20, "forward_iterations": int(res.iterations.max()),
           "backward_iterations": None if bwd is None else int(bwd.max())}
    times = []
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        t0 = time.perf_counter()
        _step(net, m)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    out["seconds"] = statistics.median(times)
    if torch.device(device).type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(n: int, mode: str, size: int, device: str) -> None:
    """One step in this (fresh) process; prints its RSS before the step and its peak RSS.

    ``ru_maxrss`` of a child can start at the parent's size (the high-water mark survives the
    fork), so the peak of the step itself is read from ``VmHWM`` after resetting it
    (``/proc/self/clear_refs``, Linux); ``ru_maxrss`` is printed beside it."""
    torch.set_num_threads(1)
    net, m = _setup(n, mode, size, device)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark VmHWM to the current RSS
    before = _status_mb("VmRSS")
    _step(net, m)
    print(json.dumps({"rss_before_mb": before, "peak_rss_mb": _status_mb("VmHWM"),
                      "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _rss(n: int, mode: str, size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), mode, "--size", str(size)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    return {"peak_rss_mb": r["peak_rss_mb"], "rss_delta_mb": r["peak_rss_mb"] - r["rss_before_mb"],
            "ru_maxrss_mb": r["ru_maxrss_mb"]}


def _plot(results: dict, path: Path, iters) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("graph_mb", "autograd graph (MB, saved tensors)"), ("rss_delta_mb", "peak RSS of the step (MB)"),
            ("seconds", "seconds per training step")]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    for a, (k, label) in zip(ax, keys):
        for mode, mk in zip(MODES, ("o-", "s--")):
            a.plot(iters, [results[mode][str(n)][k] for n in iters], mk, label=mode)
        a.set_xlabel("forward iterations n")
        a.set_ylabel(label)
        a.legend()
        a.grid(True, alpha=0.3)
    fig.suptitle("MOL training step: DEQ (implicit backward) vs unrolled autograd")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--child", nargs=2, default=None, metavar=("N", "MODE"))
    args = p.parse_args(argv)
    size = args.size or (16 if args.quick else 64)
    if args.child is not None:
        child(int(args.child[0]), args.child[1], size, args.device)
        return 0
    torch.set_num_threads(1)
    out = output_dir(args.out, args.quick)
    iters = QUICK_ITERS if args.quick else ITERS
    results: dict = {mode: {} for mode in MODES}
    rss = {}
    if torch.device(args.device).type == "cpu":  # the subprocesses first, while this process is small
        rss = {(mode, n): _rss(n, mode, size) for mode in MODES for n in iters}
    for mode in MODES:
        for n in iters:
            r = measure(n, mode, size, args.device, args.repeats)
            r.update(rss.get((mode, n), {}))
            results[mode][str(n)] = r
            log(f"{mode} n={n}: graph {r['graph_mb']:.2f} MB, saved {r['saved_mb']:.2f} MB, "
                f"RSS delta {r.get('rss_delta_mb', float('nan')):.1f} MB, {r['seconds']:.3f} s")
    lo, hi = str(iters[0]), str(iters[-1])
    ratios = {k: {mode: results[mode][hi][k] / results[mode][lo][k] if results[mode][lo][k] > 0 else None
                  for mode in MODES}
              for k in ("graph_mb", "saved_mb", "rss_delta_mb", "peak_rss_mb", "cuda_peak_mb")
              if k in results["deq"][lo]}
    tag = "_quick" if args.quick else ""
    doc = {
        "description": __doc__.split("\n\n")[1].replace("\n", " "),
        "setting": {"image": [size, size], "batch": 4, "cnn": "MOLCNN(1, 16, 4, complex)", "dtype": "complex64",
                    "mask": "radial 20%", "kappa_fwd": 0.0, "kappa_bwd": 1e-4, "max_bwd": "n"},
        "memory_measures": {
            "graph_mb": "MiB of tensors saved for backward by the forward (torch.autograd.graph.saved_tensors_hooks)",
            "saved_mb": "MiB of tensors saved for backward, forward and backward together (saved_tensors_hooks)",
            "peak_rss_mb": "peak RSS (VmHWM, reset by /proc/self/clear_refs after setup) of a fresh subprocess "
                           "running one step (MiB)",
            "rss_delta_mb": "that peak minus the subprocess's RSS (VmRSS) just before the step, after building the "
                            "net and data: the step's own peak",
            "ru_maxrss_mb": "resource.getrusage(RUSAGE_SELF).ru_maxrss of that subprocess (MiB; its high-water mark "
                            "may start at the parent's size)",
            "cuda_peak_mb": "torch.cuda.max_memory_allocated over the timed steps (MiB; CUDA only)"},
        "budget": f"per setting: 1 measured step + {args.repeats} timed steps in this process, 1 step in a fresh "
                  "subprocess; torch threads = 1",
        "results": results,
        f"ratio_{hi}_over_{lo}": ratios,
        "target": f"deq memory at n = {hi} <= 1.1 x its memory at n = {lo}",
        "target_met": {k: v["deq"] is not None and v["deq"] <= 1.1 for k, v in ratios.items()},
        "environment": environment(args.device, 1),
    }
    (out / f"deq{tag}.json").write_text(json.dumps(doc, indent=1) + "\n")
    _plot(results, out / f"deq{tag}.png", iters)
    log(f"wrote {out / f'deq{tag}.json'} and {out / f'deq{tag}.png'}; ratios {hi}/{lo}: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
