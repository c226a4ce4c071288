"""Training LDA-Net: stair training with Adam, per-epoch checkpoints, exact resume.

:func:`train` runs the stages of :meth:`OptimConfig.stages` (LDA Sec. 4.1: ``K = 3`` first,
then ``+2`` phases per stage, each stage warm-started from the previous one with a fresh
Adam optimizer).  Every epoch it

* shuffles the training set with a generator seeded by ``(seed, epoch)`` (no hidden RNG
  state, so a resumed run draws the same batches),
* minimizes :func:`~lda_opt.learning.losses.reconstruction_loss` of the ``K``-phase output,
* evaluates the validation set (loss, PSNR, SSIM),
* writes, in this order,

  - ``model.safetensors`` / ``model.json``: the inference checkpoint (the FeatureCNN and the
    metadata of :mod:`lda_opt.learning`; ``best.*`` likewise with ``train.select =
    "best_val"``),
  - ``state.safetensors``: every parameter and the Adam moments, with the bookkeeping
    (epoch, log, best epoch, summary) as JSON in its header -- one file, so the weights and
    the epoch they belong to can never disagree -- for ``resume=True``,
  - ``log.json``: the summary with one record per epoch (``curves.png`` is redrawn at the end
    of every stage and when the run stops).

Crash safety.  Every file is written by :func:`lda_opt._atomic.atomic_write` (temporary,
fsync, ``os.replace``): a run killed at any point (SIGKILL included) leaves each file either
as it was or complete, never half-written; at worst a hidden ``.NAME.*.tmp`` remains, which
the next run in the directory deletes.  ``state.safetensors`` is the commit point: what is
written before it in an epoch (the checkpoints) is rewritten, identically, when a resumed
run replays that epoch, and what is written after it (``log.json``, ``curves.png``) is
rewritten from the state by a resumed run that has no epoch left to train.  The only
transient inconsistency a kill can leave is a ``model.safetensors`` newer than its
``model.json`` (killed between their two renames): :func:`~lda_opt.nets.load_checkpoint`
refuses that pair ("different saves") and ``resume=True`` rewrites it.

Distributed data parallel.  Under ``torchrun --nproc_per_node N`` (``WORLD_SIZE > 1`` in the
environment; or inside a process group the caller initialized) the standard mode trains
with :class:`~torch.nn.parallel.DistributedDataParallel` (gloo: training runs on the CPU;
:func:`ddp_backend` gives nccl for a CUDA device): every rank draws the same seeded
permutation and takes ``batch[rank::world]`` of each global batch, so that rank ``r`` sees
``perm[r::world]`` of the epoch's shuffle when ``world`` divides ``train.batch_size``; its
loss is scaled by ``world * n_rank / n_batch`` so that DDP's average of the rank gradients is
the gradient of the global batch's mean loss (the single-process step, up to round-off, also
for an uneven last batch).  Only rank 0 writes (config, checkpoints, state, log, curves) and
shows a bar; every rank validates the whole validation set (same weights, same numbers).  At
each stage boundary every rank grows the net and rebuilds DDP and Adam.  ``resume=True`` works
as in one process (every rank reads ``state.safetensors``: ``out_dir`` must be on a file
system the ranks share).

On CPU with a fixed thread count a resumed run -- after :func:`train` returned with
``stop_after`` or after the process was killed anywhere -- reproduces the uninterrupted one
bit for bit (``tests/test_faults.py``).  A tqdm bar shows the loss and the validation PSNR
(only on a terminal, never with ``quiet=True``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write, atomic_write_text, fault_point, remove_stale_temps
from ..metrics import psnr, ssim
from ..nets import save_checkpoint, xavier_init_
from ..nets.checkpoint import config_path
from ..nets.safetensors_header import _read_safetensors_header
from ..tasks import Measurement
from .config import TrainConfig
from .datasets import training_data
from .losses import reconstruction_loss
from .net import LDANet, tv_init_

__all__ = [
    "BEST_FILE",
    "CURVES_FILE",
    "LOG_FILE",
    "MODEL_FILE",
    "STATE_FILE",
    "build_net",
    "checkpoint_metadata",
    "ddp_backend",
    "evaluate",
    "exported_checkpoint",
    "extends",
    "train",
]

MODEL_FILE = "model.safetensors"
BEST_FILE = "best.safetensors"
STATE_FILE = "state.safetensors"
LOG_FILE = "log.json"
CURVES_FILE = "curves.png"
CONFIG_FILE = "config.json"
_STATE_FORMAT = "lda_opt.train_state"
_STATE_VERSION = 2  # 1: bookkeeping in a separate state.json (not crash-safe; not read any more)
#: every file a run writes into its directory (their stale temporaries are removed)
_RUN_FILES = (CONFIG_FILE, LOG_FILE, CURVES_FILE, STATE_FILE, MODEL_FILE, config_path(MODEL_FILE).name,
              BEST_FILE, config_path(BEST_FILE).name)


def _dtype(config: TrainConfig) -> torch.dtype:
    return torch.float64 if config.train.dtype == "float64" else torch.float32


def build_net(config: TrainConfig, phases: int | None = None) -> LDANet:
    """The network of ``config`` with ``phases`` (default ``train.first_phases``) phases and
    a seeded Xavier initialization (LDA Sec. 4.1), or the TV one of ``net.init = "tv"``."""
    n = config.net
    net = LDANet(phases or config.train.first_phases, n.width, n.depth, n.algorithm,
                 in_channels=1, kernel_size=n.kernel_size, complex=config.task.kind == "mri", delta=n.delta,
                 alpha=n.alpha, tau=n.tau, theta=n.theta, gamma_u=n.gamma_u, eps0=n.eps0, gamma=n.gamma, sigma=n.sigma,
                 weight=n.weight)
    gen = torch.Generator().manual_seed(config.seed)
    if n.init == "tv":
        tv_init_(net.features, n.init_noise, generator=gen)
    else:
        xavier_init_(net.features, generator=gen)
    return net.to(_dtype(config))


def _data_range(m: Measurement) -> float | None:
    return None if m.truth.is_complex() else 1.0


@torch.no_grad()
def evaluate(net: LDANet, m: Measurement, batch_size: int = 64, ssim_weight: float = 0.0,
             weight: float | None = None) -> dict[str, float]:
    """Mean loss, PSNR and SSIM of the ``K``-phase reconstructions of ``m`` (per sample;
    data range 1 for real images, ``max|truth|`` for complex ones; SSIM on magnitudes).
    ``weight``: the kappa to solve with (default: the net's own; a meta-trained task's
    ``sigmoid(omega_i)``, :func:`lda_opt.learning.meta.evaluate_task`)."""
    n = m.y.shape[0]
    losses, ps, ss = [], [], []
    for s in range(0, n, batch_size):
        idx = torch.arange(s, min(n, s + batch_size))
        sub = m.select(idx)
        problem = net.problem(sub.fidelity()) if weight is None else net.problem(sub.fidelity(), weight)
        x, _ = net.reconstruct(problem, sub.x0)
        dr = _data_range(m)
        losses.append(float(reconstruction_loss(x, sub.truth, ssim_weight, dr)) * len(idx))
        ps.append(psnr(x, sub.truth, dr))
        if min(sub.truth.shape[-2:]) >= 11:
            ss.append(ssim(x, sub.truth, dr))
    out = {"loss": sum(losses) / n, "psnr": float(torch.cat(ps).mean())}
    out["ssim"] = float(torch.cat(ss).mean()) if ss else math.nan
    return out


def checkpoint_metadata(net: LDANet, config: TrainConfig, training: dict | None = None) -> dict:
    """The metadata stored with a trained network (see :mod:`lda_opt.learning`)."""
    meta = net.metadata()
    meta["problem"] = config.task.build().metadata()
    meta["continuation"] = {"eps_tol": 1.5e-5, "c": 0.35, "shrink": 0.5, "alpha": meta["alpha"][-1],
                            "max_iter": 100_000}
    meta["training"] = {"config": config.to_dict(), **(training or {})}
    return meta


# ---------------------------------------------------------------------------------------
# resume state: every parameter and the Adam moments, and the bookkeeping as JSON in the
# header of the same safetensors file (one atomic write: they cannot disagree)
# ---------------------------------------------------------------------------------------
def _save_state(out: Path, net: LDANet, opt: torch.optim.Optimizer, info: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"net.{k}": v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    sd = opt.state_dict()
    for i, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous().clone()
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": list(g["params"])} for g in sd["param_groups"]]
    info = dict(info, param_groups=groups)
    header = {"format": _STATE_FORMAT, "version": str(_STATE_VERSION),
              "info": json.dumps(info, sort_keys=True, allow_nan=True)}
    atomic_write(out / STATE_FILE, lambda tmp: save_file(tensors, tmp, metadata=header))


def _load_state(out: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and the bookkeeping of ``out/state.safetensors``; ``ValueError`` naming
    the file for anything but a complete state of this version."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = out / STATE_FILE
    _, meta = _read_safetensors_header(path)  # ValueError for a truncated or hostile file
    if meta.get("format") != _STATE_FORMAT or meta.get("version") != str(_STATE_VERSION):
        raise ValueError(f"{path}: not a training state of this lda_opt (format {meta.get('format')!r}, "
                         f"version {meta.get('version')!r}; this lda_opt reads version {_STATE_VERSION}); "
                         "train again without resume")
    try:
        info = json.loads(meta["info"])
        if not isinstance(info, dict):
            raise TypeError("not a JSON object")
        tensors = load_file(str(path))
    except (KeyError, TypeError, json.JSONDecodeError, RecursionError, SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: corrupted training state ({type(exc).__name__}: {exc})") from None
    return tensors, info


def _restore(net: LDANet, tensors: dict, info: dict, make_opt) -> torch.optim.Optimizer:
    K = int(info["phases"])
    if K > net.phases:
        net.grow(K)
    sd = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    net.load_state_dict(sd, strict=True)
    opt = make_opt(net)
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    groups = info["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
    return opt


# ---------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------
def _plot(out: Path, log: list[dict], title: str) -> None:
    from lda_opt._plotting import pyplot

    plt = pyplot()

    ep = [r["epoch"] for r in log]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].semilogy(ep, [r["train_loss"] for r in log], "o-", label="train")
    ax[0].semilogy(ep, [r["val_loss"] for r in log], "s--", label="val")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("loss 1/2||x_K - x||^2")
    ax[0].legend()
    ax[1].plot(ep, [r["val_psnr"] for r in log], "o-")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("val PSNR (dB)")
    for a in ax:
        for i in range(1, len(log)):
            if log[i]["phases"] != log[i - 1]["phases"]:
                a.axvline(ep[i] - 0.5, color="gray", lw=0.8, ls=":")
    fig.suptitle(f"{title}: stair training (dotted: +phases)")
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.15, top=0.86, wspace=0.3)
    atomic_write(out / CURVES_FILE, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, allow_nan=True) + "\n")


# ---------------------------------------------------------------------------------------
# torch.distributed (torchrun): the process group, the rank's share of a batch
# ---------------------------------------------------------------------------------------
def ddp_backend(device: torch.device | str = "cpu") -> str:
    """The torch.distributed backend for training on ``device``: ``"nccl"`` for CUDA,
    ``"gloo"`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def _env_world_size() -> int:
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        world = int(raw)
    except ValueError:
        raise ValueError(f"WORLD_SIZE must be an integer >= 1 (torchrun sets it); got {raw!r}") from None
    if world < 1:
        raise ValueError(f"WORLD_SIZE must be an integer >= 1 (torchrun sets it); got {raw!r}")
    return world


def _process_group() -> tuple[int, int, bool]:
    """``(rank, world, created)``: the initialized process group (``created``: by this call,
    from torchrun's environment, with :func:`ddp_backend`), or ``(0, 1, False)`` in one
    process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if _env_world_size() == 1:
        return 0, 1, False
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    dist.init_process_group(backend=ddp_backend("cpu"))
    return dist.get_rank(), dist.get_world_size(), True


def _check_shards(n: int, batch_size: int, world: int) -> None:
    """Every global batch must give each of the ``world`` ranks at least one sample."""
    last = n % batch_size or batch_size
    if world > 1 and min(batch_size, n, last) < world:
        raise ValueError(f"train.batch_size = {batch_size} with {n} training samples gives a batch of "
                         f"{min(batch_size, n, last)} sample(s), fewer than the {world} ranks: every rank needs "
                         "a sample of every batch (a larger batch_size, or data.train a multiple of it)")


def _ddp(net: LDANet, world: int):
    """``net`` wrapped in DistributedDataParallel (a new wrapper per stage: ``grow`` adds
    parameters), or ``net`` itself in one process."""
    if world == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net)


def _all_sum(values: list[float], world: int) -> list[float]:
    """The sums over the ranks of ``values`` (float64), or ``values`` in one process."""
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


# ---------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------
def extends(config: TrainConfig, before: TrainConfig) -> bool:
    """Whether ``config`` trains exactly the stages of ``before`` (phases, epochs, starting
    rates) and then appends more, with every other field equal, so that resuming a run of
    ``before`` under ``config`` gives the same result as training ``config`` from scratch."""
    old, new = before.train.stages(), config.train.stages()
    if len(new) <= len(old) or new[:len(old)] != old:
        return False
    if any(before.train.peak_lr(i) != config.train.peak_lr(i) for i in range(len(old))):
        return False
    a, b = before.to_dict(), config.to_dict()
    for d in (a, b):
        del d["train"]["phases"], d["train"]["stage_lr"], d["train"]["select"]
    return a == b


def exported_checkpoint(out_dir: str | os.PathLike, config: TrainConfig) -> Path:
    """The checkpoint a run of ``config`` in ``out_dir`` exports (``train.select``):
    ``best.safetensors`` for ``"best_val"``, ``model.safetensors`` for ``"last"``."""
    path = Path(out_dir) / (BEST_FILE if config.train.select == "best_val" else MODEL_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"no exported checkpoint {path} (train the run first)")
    return path


def train(config: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False, quiet: bool = False,
          stop_after: int | None = None, data=None) -> dict:
    """Train the network of ``config`` into ``out_dir``; returns the summary (also in
    ``log.json``).

    ``resume=True`` continues from ``out_dir/state.*``; the config must be the one the run
    was trained with, or one that :func:`extends` it (more stages appended: a finished run
    then trains on, and the result equals training the longer config from scratch);
    ``stop_after`` stops after that many epochs in total (an interruption, for tests);
    ``data``: prebuilt :class:`~lda_opt.learning.datasets.TrainData` (default: built from the
    config).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int) or stop_after < 1):
        raise ValueError(f"stop_after must be an integer >= 1 or None; got {stop_after!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.train.threads)
    created = False
    try:
        rank, world, created = _process_group()
        if config.train.mode != "standard":
            if world > 1:
                raise ValueError(f"train.mode = {config.train.mode!r} runs in one process; torch.distributed "
                                 f"(WORLD_SIZE = {world}) is supported for train.mode = 'standard'")
            return mode_trainer(config.train.mode)(config, out, resume=resume, quiet=quiet, stop_after=stop_after,
                                                   data=data)
        return _train(config, out, resume, quiet, stop_after, data, rank=rank, world=world)
    finally:
        torch.set_num_threads(threads_before)
        if created:
            import torch.distributed as dist

            dist.destroy_process_group()


#: ``train.mode`` (but "standard") -> "module:function" of its training system; the function
#: is called as ``fn(config, out, *, resume, quiet, stop_after, data)`` inside :func:`train`
#: (threads set, ``out`` created) and returns the run's ``log.json`` summary.
MODE_TRAINERS: dict[str, str] = {
    "meta": "lda_opt.learning.meta:train_meta",
    "transfer_step1": "lda_opt.learning.transfer:train_transfer",
    "transfer_step2": "lda_opt.learning.transfer:train_transfer",
    "mol": "lda_opt.learning.mol:train_mol",
}


def mode_trainer(mode: str):
    """The training function of ``train.mode = mode`` (:data:`MODE_TRAINERS`)."""
    import importlib

    if mode not in MODE_TRAINERS:
        raise ValueError(f"train.mode must be one of {['standard', *MODE_TRAINERS]}; got {mode!r}")
    module, name = MODE_TRAINERS[mode].split(":")
    return getattr(importlib.import_module(module), name)


def _adam(net: LDANet, tc) -> torch.optim.Optimizer:
    """A fresh Adam over ``net`` with the config's ``lr`` and ``betas`` (a new one per stage)."""
    return torch.optim.Adam(net.parameters(), lr=tc.lr, betas=tuple(tc.betas))


def _resume_run(config: TrainConfig, out: Path, plan: list, cfg_dict: dict, net: LDANet, make_opt, *,
                write: bool = True):
    """Restore ``net`` and the optimiser from ``out/state.*``; returns ``(opt, summary, log,
    start epoch, seconds before, best)``. An extending config rewrites ``config.json`` (unless
    ``write=False``: a rank other than 0); a best epoch of a stage that is no longer the final
    one is dropped."""
    if not (out / STATE_FILE).is_file():
        raise ValueError(f"resume: no {STATE_FILE} in {out}")
    tensors, info = _load_state(out)
    before = TrainConfig.from_dict(info.get("config"))
    if before.to_dict() != cfg_dict:
        if not extends(config, before):
            raise ValueError(f"resume: the config differs from the one {out} was trained with (it may only "
                             "append stages: a larger train.phases, the earlier stages and everything else unchanged)")
        if write:
            _write_json(out / CONFIG_FILE, cfg_dict)
    opt = _restore(net, tensors, info, make_opt)
    summary = info["summary"]
    best = info.get("best")
    if best is not None and plan[best["epoch"] - 1][0] != len(config.train.stages()) - 1:
        best = None  # an extended run: the best of a stage that is no longer the final one
    return opt, summary, list(summary["epochs"]), int(info["epoch"]), float(info.get("seconds", 0.0)), best


def _progress_bar(config: TrainConfig, quiet: bool, start: int, end: int, steps_per_epoch: int):
    """A tqdm bar over the steps of epochs ``start..end-1``, or None (quiet, no terminal,
    nothing to train)."""
    if quiet or not sys.stderr.isatty() or start >= end:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=(end - start) * steps_per_epoch, desc=config.name, leave=True)


def _epoch_batches(opt: torch.optim.Optimizer, tr: Measurement, config: TrainConfig, plan: list, e: int,
                   steps_per_epoch: int):
    """The sample indices of every step of epoch ``e`` (a permutation of ``tr`` seeded by
    ``(seed, e)``), the step's learning rate set in ``opt`` before each is yielded."""
    tc = config.train
    stage, _, j = plan[e]
    stage_steps = tc.stages()[stage][1] * steps_per_epoch
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + e)
    perm = torch.randperm(tr.y.shape[0], generator=gen)
    for s in range(steps_per_epoch):
        lr = tc.lr_at(j * steps_per_epoch + s, stage_steps, stage)
        for group in opt.param_groups:
            group["lr"] = lr
        yield perm[s * tc.batch_size:(s + 1) * tc.batch_size]


def _batch_loss(model, net: LDANet, b: Measurement, tc) -> torch.Tensor:
    """The reconstruction loss of ``model`` (``net``, or ``net`` in DDP) on the batch ``b``."""
    x, _ = model(net.problem(b.fidelity()), b.x0)
    return reconstruction_loss(x, b.truth, tc.ssim_weight, _data_range(b))


def _train_epoch(net: LDANet, opt: torch.optim.Optimizer, tr: Measurement, config: TrainConfig, plan: list, e: int,
                 steps_per_epoch: int, bar, log: list[dict], *, model=None, rank: int = 0,
                 world: int = 1) -> tuple[float, int]:
    """One epoch of Adam steps over a seeded permutation of ``tr`` (epoch ``e`` of ``plan``); a step with a non-finite loss is skipped. Returns ``(sum of batch loss x batch
    size, skipped steps)``.

    With ``world > 1`` (``model``: ``net`` in DistributedDataParallel) rank ``rank`` takes
    ``batch[rank::world]`` of every global batch, its loss scaled by ``world * n_rank /
    n_batch`` (DDP averages the rank gradients: the global batch's mean-loss gradient); the
    returned sum and the skip decision are over all ranks (a step is skipped on every rank
    when any rank's loss is non-finite)."""
    if world > 1:
        return _train_epoch_ddp(net, opt, tr, config, plan, e, steps_per_epoch, bar, log, model, rank, world)
    K = plan[e][1]
    total, skipped = 0.0, 0
    for idx in _epoch_batches(opt, tr, config, plan, e, steps_per_epoch):
        loss = _batch_loss(net, net, tr.select(idx), config.train)
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            opt.step()
        else:
            skipped += 1
        fault_point("step")
        total += float(loss.detach()) * len(idx)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(K=K, loss=f"{float(loss):.4g}", val_psnr=f"{log[-1]['val_psnr']:.2f}" if log else "-")
    return total, skipped


def _train_epoch_ddp(net: LDANet, opt: torch.optim.Optimizer, tr: Measurement, config: TrainConfig, plan: list,
                     e: int, steps_per_epoch: int, bar, log: list[dict], model, rank: int,
                     world: int) -> tuple[float, int]:
    """:func:`_train_epoch` on rank ``rank`` of ``world`` (see there)."""
    K = plan[e][1]
    total, skipped = 0.0, 0
    for idx in _epoch_batches(opt, tr, config, plan, e, steps_per_epoch):  # the same on every rank
        mine = idx[rank::world]
        loss = _batch_loss(model, net, tr.select(mine), config.train)
        opt.zero_grad(set_to_none=True)
        value = float(loss.detach())
        finite = math.isfinite(value)
        batch_sum, bad = _all_sum([value * len(mine) if finite else 0.0, 0.0 if finite else 1.0], world)
        if bad == 0.0:
            (loss * (world * len(mine) / len(idx))).backward()  # DDP all-reduces (averages) the gradients
            opt.step()
        else:
            skipped += 1
        fault_point("step")
        total += batch_sum if bad == 0.0 else math.nan
        if bar is not None:
            bar.update(1)
            mean = batch_sum / len(idx) if bad == 0.0 else math.nan
            bar.set_postfix(K=K, loss=f"{mean:.4g}", val_psnr=f"{log[-1]['val_psnr']:.2f}" if log else "-")
    return total, skipped


def _epoch_record(net: LDANet, opt: torch.optim.Optimizer, va: Measurement, tc, plan: list, e: int,
                  total: float, skipped: int, n: int, steps_per_epoch: int, t0: float) -> dict:
    """Validate ``net`` on ``va`` after epoch ``e``; the epoch's ``log.json`` entry."""
    stage, K, j = plan[e]
    val = evaluate(net, va, batch_size=max(tc.batch_size, 64), ssim_weight=tc.ssim_weight)
    pp = {k: [float(t) for t in v.detach()] for k, v in net.phase_params().items()}
    return {"epoch": e + 1, "stage": stage + 1, "phases": K, "epoch_in_stage": j + 1,
            "train_loss": total / n, "val_loss": val["loss"], "val_psnr": val["psnr"], "val_ssim": val["ssim"],
            "steps": steps_per_epoch, "skipped_steps": skipped, "lr_last": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
            "eps0": float(net.eps0.detach()), **pp}


def _save_epoch(out: Path, net: LDANet, opt: torch.optim.Optimizer, config: TrainConfig, cfg_dict: dict,
                plan: list, log: list[dict], seconds: float, x0_psnr: float, tr: Measurement, va: Measurement,
                best: dict | None, *, write: bool = True) -> tuple[dict, dict | None]:
    """After the epoch ``log[-1]``: the model (and, selecting ``best_val``, the best final-stage)
    checkpoint, the resumable state and ``log.json`` (nothing written with ``write=False``:
    a rank other than 0). Returns ``(summary, best)``."""
    tc = config.train
    stages = tc.stages()
    rec = log[-1]
    e, stage = rec["epoch"] - 1, rec["stage"] - 1
    n = tr.y.shape[0]
    training = {"epochs": e + 1, "steps": sum(r["steps"] for r in log), "samples_seen": (e + 1) * n,
                "seconds": seconds, "threads": tc.threads, "final_val_psnr": rec["val_psnr"],
                "stages": [list(st) for st in stages], "train_samples": n, "val_samples": va.y.shape[0]}
    if write:
        save_checkpoint(net.features, out / MODEL_FILE, **checkpoint_metadata(net, config, training))
    if tc.select == "best_val" and stage == len(stages) - 1 and (best is None or rec["val_psnr"] > best["val_psnr"]):
        best = {"epoch": e + 1, "val_psnr": rec["val_psnr"]}
        if write:
            save_checkpoint(net.features, out / BEST_FILE, **checkpoint_metadata(net, config, training))
    summary = {"name": config.name, "config": cfg_dict, "val_psnr_x0": x0_psnr, "epochs": log, "budget": training,
               "parameters": net.num_parameters(), "complete": e + 1 == len(plan), "best": best}
    if write:
        _save_state(out, net, opt, {"epoch": e + 1, "phases": net.phases, "config": cfg_dict, "summary": summary,
                                    "seconds": seconds, "best": best})
        _write_json(out / LOG_FILE, summary)
    return summary, best


def _finish(out: Path, bar, log: list[dict], summary: dict | None, start: int, end: int, plan: list, name: str,
            *, write: bool = True) -> dict:
    """Close the bar; a resumed run with nothing left rewrites the log and curves from the state;
    returns ``log.json`` (with ``write=False``, a rank other than 0: the same summary, from
    memory)."""
    if bar is not None:
        bar.close()
    if not log:
        raise ValueError("nothing to train: the config has no epochs")
    if start >= end:  # resumed with nothing left to train: the log and curves from the state
        summary = dict(summary, complete=start == len(plan))
        if write:
            _write_json(out / LOG_FILE, summary)
            _plot(out, log, name)
    if not write:
        return json.loads(json.dumps(summary, allow_nan=True))
    return json.loads((out / LOG_FILE).read_text(encoding="utf-8"))


def _train(config: TrainConfig, out: Path, resume: bool, quiet: bool, stop_after: int | None, data, *,
           rank: int = 0, world: int = 1) -> dict:
    tc = config.train
    write = rank == 0  # the only rank that writes
    plan = [(s, K, j) for s, (K, E) in enumerate(tc.stages()) for j in range(E)]  # (stage, phases, epoch in stage)
    cfg_dict = config.to_dict()
    make_opt = functools.partial(_adam, tc=tc)
    net = build_net(config)
    opt = make_opt(net)
    log: list[dict] = []
    start, seconds_before = 0, 0.0
    best = None  # {"epoch", "val_psnr"}: the best validation epoch of the final stage so far
    summary = None
    if write:
        remove_stale_temps(out, _RUN_FILES)  # what a killed run left (this run owns the directory)
    if resume:
        opt, summary, log, start, seconds_before, best = _resume_run(config, out, plan, cfg_dict, net, make_opt,
                                                                     write=write)
    elif write:
        _write_json(out / CONFIG_FILE, cfg_dict)
    if data is None:
        data = training_data(config)
    tr, va = data.train, data.val
    x0_psnr = float(psnr(va.x0, va.truth, _data_range(va)).mean())
    n = tr.y.shape[0]
    steps_per_epoch = -(-n // tc.batch_size)
    _check_shards(n, tc.batch_size, world)
    end = len(plan) if stop_after is None else min(len(plan), stop_after)
    bar = _progress_bar(config, quiet or not write, start, end, steps_per_epoch)
    model = _ddp(net, world)
    t_run = time.perf_counter()
    for e in range(start, end):
        K = plan[e][1]
        if K != net.phases:  # stage boundary: warm start with more phases, fresh Adam (and DDP wrapper)
            net.grow(K)
            opt = make_opt(net)
            model = _ddp(net, world)
        t0 = time.perf_counter()
        total, skipped = _train_epoch(net, opt, tr, config, plan, e, steps_per_epoch, bar, log, model=model,
                                      rank=rank, world=world)
        log.append(_epoch_record(net, opt, va, tc, plan, e, total, skipped, n, steps_per_epoch, t0))
        if bar is not None:
            bar.set_postfix(K=K, loss=f"{log[-1]['train_loss']:.4g}", val_psnr=f"{log[-1]['val_psnr']:.2f}")
        seconds = seconds_before + (time.perf_counter() - t_run)
        summary, best = _save_epoch(out, net, opt, config, cfg_dict, plan, log, seconds, x0_psnr, tr, va, best,
                                    write=write)
        if write and (e + 1 == end or plan[e + 1][1] != K):  # the curves: at every stage end and at the stop
            _plot(out, log, config.name)
    if world > 1:  # rank 0's files are complete before any rank returns (a resume may follow)
        import torch.distributed as dist

        dist.barrier()
    return _finish(out, bar, log, summary, start, end, plan, config.name, write=write)
