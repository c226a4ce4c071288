"""Unrolled LDA-Net: training, stair training, losses and the shipped checkpoints (LDA Sec. 4).

* :class:`LDANet` -- ``K`` phases of the solver's own ``iterate`` (LDA / GD / AGD step) with
  learned per-phase ``alpha_k``, ``tau_k`` (``theta_k``), a learned ``eps_0`` and one shared
  :class:`~lda_opt.nets.FeatureCNN`;
* :func:`train` -- stair training with Adam, per-epoch checkpoints and exact resume
  (``lda-opt train --config FILE``); :class:`TrainConfig` / :func:`load_config`;
* :class:`BlockCSTask`, :class:`MRITask` -- the tasks and their seeded operators;
* :func:`shipped_checkpoint`, :func:`load_lda_net` -- the trained networks.

Checkpoint contract (what ``lda-opt solve --checkpoint PATH`` reads)
-------------------------------------------------------------------
A trained network is saved with :func:`lda_opt.nets.save_checkpoint` as ``NAME.safetensors``
(the weights of the **FeatureCNN q itself**) plus ``NAME.json``, whose ``metadata`` is::

    schema: 1, kind: "lda-net"
    algorithm: "lda" | "gd" | "agd" | "meta-lda" | "elda"   # the step every phase ran (ALGORITHMS name)
    phases: K
    weight: kappa                          # fixed (not learned); Problem(..., weight=kappa)
    eps0: learned eps_0
    alpha: [K], tau: [K] (lda), theta: [K] (agd)   # learned per-phase values
    raw: {...}                             # the unconstrained parameters (bit-exact reload)
    solver: {gamma, sigma, smoothing: "huber" | "sqrt", linesearch: false | true (meta-lda, elda)}
    continuation: {eps_tol, c, shrink, alpha, max_iter}   # Algorithm 1 after phase K
    dtype: "float32"
    problem: {"kind": "block-cs", "ratio", "mask": null, "block": 33, "matrix_seed",
              "initializer": {"n_blocks", "size", "seed"}}        # A and Q regenerated
           | {"kind": "mri", "ratio", "mask": "radial", "mask_seed", "shape": [H, W],
              "noise", "noise_seed", "x0": "zero-filling"}        # the mask regenerated
    training: {"config": {...}, "epochs", "steps", "seconds", "final_val_psnr", ...}

The sensing matrix / mask is never stored: :func:`task_from_metadata` regenerates it from
its seed.  Shipped checkpoints live in ``lda_opt/checkpoints/`` with their training config
(``NAME.config.json``) and are retrained by ``make checkpoints``.

Reconstructing with a checkpoint::

    net = load_lda_net(path)                         # or path = shipped_checkpoint("mri", 0.2, "radial")
    task = task_from_metadata(net.checkpoint_metadata)
    m = task.measure(images)                         # (N, 1, H, W) ground truths -> A, y, x0
    problem = net.problem(m.fidelity())              # Problem(LeastSquares(A, y), q, weight=kappa)
    x_K, state = net.reconstruct(problem, m.x0)      # the K trained phases
    recon = m.to_image(x_K)                          # blocks -> images for block CS
    # optionally continue Algorithm 1 to its termination rule (LDA Sec. 4.3.3):
    res = continue_run(net, problem, state, eps_tol=...)   # a Result: lda_opt.check(res, ...) works
"""

from ..tasks import BlockCSTask, Measurement, MRITask, task_from_metadata
from .config import DataConfig, NetConfig, OptimConfig, TaskConfig, TrainConfig, load_config
from .continuation import continue_run
from .losses import mse_loss, reconstruction_loss
from .net import NET_ALGORITHMS, LDANet
from .shipped import CHECKPOINT_DIR, load_lda_net, shipped_checkpoint, shipped_checkpoints
from .train import build_net, evaluate, train

__all__ = [
    "CHECKPOINT_DIR",
    "NET_ALGORITHMS",
    "BlockCSTask",
    "DataConfig",
    "LDANet",
    "MRITask",
    "Measurement",
    "NetConfig",
    "OptimConfig",
    "TaskConfig",
    "TrainConfig",
    "build_net",
    "continue_run",
    "evaluate",
    "load_config",
    "load_lda_net",
    "mse_loss",
    "reconstruction_loss",
    "shipped_checkpoint",
    "shipped_checkpoints",
    "task_from_metadata",
    "train",
]
