"""``lda-opt solve``: iterate one imaging instance to the stationarity certificate.

Builds the instance with :func:`lda_opt.instances.make_instance`, runs the chosen algorithm
with its paper defaults except ``eps_tol`` (CLI default ``min(1, sigma * eps0)``; ``--sigma``,
``--eps-tol``, ``--eps0`` and ``--max-iter`` override them) and writes into ``--out DIR``.

What the default guarantees.  A sample stops at the first reduction ``eps_{k+1} = gamma
eps_k`` with ``sigma eps_{k+1} < eps_tol``; the reduction test then certifies
``||grad phi_{eps_k}(x_{k+1})|| < sigma gamma eps_k = sigma eps_{k+1} < eps_tol``.  With the
default ``eps_tol = min(1, sigma eps0)`` the certificate is ``||grad phi_{eps_k}(x_{k+1})|| <
eps_tol <= 1``, after ``num_reductions(eps0, eps_tol, sigma, gamma)`` reductions (not after
the first smoothing level in general): 1 when ``sigma eps0 <= 1`` (then ``eps_tol = sigma
eps0``), more when ``sigma eps0 > 1``.  At LDA's (and GD's, AGD's) defaults ``eps0 = 1.4e-3``,
``sigma = 1e3``, ``gamma = 0.9``: ``sigma eps0 = 1.4``, ``eps_tol = 1``, 4 reductions
(``1.4 * 0.9^4 = 0.92 < 1``); at MetaLDA's and ELDA's (``eps0 = 1e-3``): ``eps_tol = 1``, 1
reduction.  (The LDA paper's remark after Thm 3.5 ends this chain in ``< gamma eps_tol``; it
ends in ``< eps_tol``: ``theory/lda.md``.)  After an LDA-Net checkpoint's K phases the default
is ``min(1, sigma * min_b eps_K,b)`` (each sample continues at its own ``eps_K,b``): the
samples whose ``eps_K`` is the smallest stop one level below it, the others further down.

* ``result.json`` -- the outcome (``algorithm, iterations, converged, reason, eps_final,
  eps_of_grad_norm, grad_norm_final, phi_final, psnr, passes {forward, backward}, seconds``):
  ``eps_final`` is ``eps_{k+1}``, the level after the last iteration (one reduction below the
  last level iterated at, for a converged sample); ``grad_norm_final`` is
  ``||grad phi_{eps_k}(x_{k+1})||``, measured at the previous level ``eps_of_grad_norm =
  eps_k`` (``grad_norm_final < sigma * gamma * eps_of_grad_norm = sigma * eps_final <
  eps_tol`` when converged); ``passes`` counts every forward / backward pass of ``q``
  (``per_sample.passes_initial``: those before the first iteration, i.e. the evaluation of
  ``x_0``, and after an LDA-Net checkpoint the K phases); the full
  configuration (``config``), the solver (``solver {name, params}``, rebuilt by
  ``ALGORITHMS[name].from_config(params)``), the problem (``problem {kind, shape, dtype,
  weight, m, smoothing, ...}``) and the theorem constants (``constants {L_f, M, L_g,
  certified, phi_star}``) that ``lda-opt check DIR`` needs;
* ``trace.csv`` -- the per-iteration :class:`~lda_opt.trace.Trace`;
* ``x.npy`` -- the solution batch (shape of ``x0``; complex for MRI), so that every reported
  objective can be recomputed;
* ``recon.png`` -- ground truth, initial guess, result and error map, PSNR in the titles;
* ``convergence.png`` -- phi and phi_eps, eps, and ||grad phi_eps|| against the iteration.

``DIR`` appears complete or not at all: the files are written into a hidden sibling that is
renamed to ``DIR`` at the end (an earlier solve's ``DIR`` is replaced; a ``DIR`` holding other
files is refused before any work).  Ctrl-C removes the partial files and exits with status 130
and one line on stderr.

For ``--problem cs`` every 33 x 33 block is one sample of the batch (its own eps, steps and
termination); ``iterations`` is then the largest per-sample count, ``converged`` means every
block converged, ``phi_final`` is the sum over blocks (the whole image's objective) and
``eps_final`` / ``eps_of_grad_norm`` / ``grad_norm_final`` are the largest over blocks.  Per-block values are under
``per_sample``.

``--checkpoint PATH`` uses a learned feature map (a safetensors checkpoint written by
:func:`lda_opt.nets.save_checkpoint`) as ``q``; its stored ``weight`` and ``eps0`` are used
unless given on the command line.  A plain feature map works on every problem (real for
``tv-denoise``/``cs``, complex for ``mri``).  An LDA-Net checkpoint of ``lda-opt train``
(``cs``/``mri``) brings its sensing model (matrix or mask from stored seeds) and step sizes:
its K trained phases run first, then ``--algorithm`` warm-started from the phases' state
(``Solver.run(..., state=...)``, as :func:`lda_opt.learning.continue_run`): each sample
continues from ``x_K`` at its own ``eps_K``, with no new evaluation of ``x_K`` (re-evaluated
at its ``eps_K``, one forward and one backward, when ``--algorithm`` smooths differently,
e.g. meta-lda's sqrt; restarted at ``--eps0`` when it is given).
``--checkpoint shipped`` picks the shipped LDA-Net that matches ``--problem``, ``--ratio``
and ``--mask``.  ``--size N`` or ``--size HxW`` solves images of any size with an MRI
checkpoint: the network is the regularizer ``q`` (convolutional, size-free) and is used as
trained; the mask is drawn at that size from the stored pattern, ratio and seed
(:func:`lda_opt.tasks.task_at_shape`).  Without ``--size`` the checkpoint's training size is
used.

``--batch-dir DIR`` solves every ``*.png`` / ``*.npy`` image of ``DIR`` (each as ``--image``,
with the same options) into ``OUT/STEM/``, each a complete folder as above.  Under
``torchrun --nproc_per_node N`` rank ``r`` takes the files ``r, r + N, ...`` of the sorted
list (:func:`shard`: ``RANK`` / ``WORLD_SIZE``); the ranks need no communication.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time

import torch

from .._atomic import check_replaceable, fault_point, staged_dir
from .._validate import out_dir
from ..algorithms import ALGORITHMS
from ..algorithms.candidates import CANDIDATES
from ..instances import KINDS, MASKS, REGULARIZERS, make_instance
from ..tasks import task_at_shape

#: ``--eps-tol`` when not given (capped at ``sigma * eps0``, see the module docstring)
#: the solvers with a candidate rule (``candidate=``) and the rule ``--candidate`` defaults to:
#: ELDA + L-BFGS certifies with fewer passes than torch L-BFGS on every race task
#: (benchmarks/results/race.md), every accepted step satisfying (4.9a)-(4.9b) or (4.11)
CANDIDATE_ALGORITHMS = ("elda", "lda")
DEFAULT_CANDIDATE = "lbfgs"
DEFAULT_EPS_TOL = 1.0
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: the files of ``--out DIR``, written together: DIR appears complete or not at all
OUTPUT_FILES = ("result.json", "trace.csv", "x.npy", "recon.png", "convergence.png")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", choices=KINDS, default="tv-denoise", help="imaging instance")
    p.add_argument("--image", default=None,
                   help="bundled image name, 'shepp-logan', or a PNG/NPY path (default per problem)")
    p.add_argument("--size", type=parse_size, default=None, metavar="N|HxW",
                   help="image size: N (N x N) or H x W, e.g. 128 or 96x128 (default: 64; cs 99; an MRI "
                        "LDA-Net checkpoint: its training size, any other size draws its mask anew)")
    p.add_argument("--ratio", type=float, default=None, help="sampling ratio for cs/mri (default .25/.2)")
    p.add_argument("--mask", choices=MASKS, default="radial", help="MRI sampling mask")
    p.add_argument("--noise", type=float, default=None, help="noise standard deviation (default: tv-denoise 0.1, else 0)")
    p.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="elda",
                   help="the solver (default elda: with --candidate lbfgs the race winner, "
                        "benchmarks/results/race.md; U-LDA Thm 4.6 checked on the run)")
    p.add_argument("--candidate", choices=CANDIDATES, default=None,
                   help="candidate rule of elda / lda (theory/candidates.md): paper (the papers' step), "
                        "lbfgs or nesterov; default lbfgs for elda and lda, none for the others")
    p.add_argument("--regularizer", choices=REGULARIZERS, default=None,
                   help="hand-crafted regularizer: tv (isotropic TV) or l1 (default tv)")
    p.add_argument("--checkpoint", default=None,
                   help="learned feature map: a .safetensors checkpoint, or 'shipped'")
    p.add_argument("--weight", type=float, default=None, help="kappa (default per problem or checkpoint)")
    p.add_argument("--eps0", type=float, default=None, help="initial smoothing level (paper default)")
    p.add_argument("--eps-tol", type=float, default=None,
                   help="stop at the reduction to eps_{k+1} with sigma*eps_{k+1} < eps_tol, which "
                        "certifies ||grad phi_{eps_k}(x_{k+1})|| < sigma*eps_{k+1} < eps_tol (default "
                        "min(1, sigma*eps0): 1.0 at the paper defaults, 4 reductions for lda/gd/agd, 1 "
                        "for meta-lda/elda; one level below the smallest eps_K after an LDA-Net's K phases)")
    p.add_argument("--sigma", type=float, default=None, help="reduction-test scale (paper default)")
    p.add_argument("--max-iter", type=int, default=None, help="iteration cap (paper default)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (never falls back)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                   help="real dtype (default float64; float32 with a checkpoint)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise, mask and sensing matrix")
    p.add_argument("--batch-dir", default=None, metavar="DIR",
                   help="solve every image file of DIR (*.png, *.npy; each as --image) into OUT/STEM/; under "
                        "torchrun (RANK, WORLD_SIZE) rank r solves the files r, r + world, ... of the sorted list")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.add_argument("--out", required=True, help="output directory")


def parse_size(text: str) -> int | tuple[int, int]:
    """``--size``: ``"128"`` -> 128 (128 x 128), ``"96x128"`` -> (96, 128) (H x W)."""
    parts = str(text).lower().replace("\u00d7", "x").split("x")
    try:
        if len(parts) not in (1, 2):
            raise ValueError
        vals = [int(v) for v in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW with integers (e.g. 128, 96x128); got {text!r}") \
            from None
    return vals[0] if len(vals) == 1 else (vals[0], vals[1])


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, refusing a CUDA/MPS device that is not available."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: {name!r} is not a torch device ({exc})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but torch.cuda.is_available() is False "
                             "(no GPU or a CPU-only torch build); refusing to fall back to the CPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} requested but MPS is not available")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu, cuda[:i] or mps; got {name!r}")
    return dev


def _load_checkpoint(args, device):
    """``(net, features, task, path, metadata)`` of ``--checkpoint`` (a path or ``shipped``).

    An LDA-Net checkpoint (metadata ``kind == "lda-net"``, written by ``lda-opt train``) gives
    the trained net and the sensing task it was trained for (``cs``/``mri`` only).  Any other
    checkpoint of :func:`lda_opt.nets.save_checkpoint` is a plain learned feature map: it is
    used as ``q`` on any problem, with ``net = task = None``.
    """
    from ..learning import load_lda_net, shipped_checkpoint, task_from_metadata
    from ..nets import load_checkpoint
    from ..nets.checkpoint import read_checkpoint_config

    path = args.checkpoint
    if path == "shipped":
        if args.problem == "tv-denoise":
            raise ValueError("--checkpoint shipped needs --problem cs or mri (the LDA-Nets are trained for them)")
        ratio = args.ratio if args.ratio is not None else {"cs": 0.25, "mri": 0.2}[args.problem]
        path = shipped_checkpoint("block-cs" if args.problem == "cs" else "mri", ratio,
                                  args.mask if args.problem == "mri" else None)
    meta = read_checkpoint_config(path)["metadata"]  # named errors for a missing, unreadable or bad file
    if isinstance(meta, dict) and meta.get("kind") == "lda-net":
        if args.problem == "tv-denoise":
            raise ValueError("this --checkpoint is an LDA-Net trained for cs or mri; "
                             "it needs --problem cs or mri")
        net = load_lda_net(path, device=device)
        task = task_from_metadata(net.checkpoint_metadata)
        if isinstance(net.checkpoint_metadata.get("meta"), dict):  # meta-LDA: one kappa per task
            task, kappa = _meta_task(args, net.checkpoint_metadata["meta"], path)
            if args.weight is None:
                net.weight = kappa
        if args.ratio is not None and abs(args.ratio - task.ratio) > 1e-6:
            raise ValueError(f"ratio {args.ratio} differs from the checkpoint's {task.ratio}")
        features, meta = net.features, net.checkpoint_metadata
    else:
        net = task = None
        features, meta = load_checkpoint(path, device=device)
        features.eval()
        if not isinstance(meta, dict):
            meta = {}
        if bool(getattr(features, "complex", args.problem == "mri")) != (args.problem == "mri"):
            raise ValueError(f"checkpoint {path} is a {'complex' if args.problem != 'mri' else 'real'} "
                             f"feature map; --problem {args.problem} needs a "
                             f"{'complex' if args.problem == 'mri' else 'real'} one")
        if args.weight is None and "weight" not in meta:
            raise ValueError(f"checkpoint {path} stores no weight; give --weight")
    for prm in features.parameters():
        prm.requires_grad_(False)
    return net, features, task, str(path), meta


def _meta_task(args, info: dict, path) -> tuple:
    """The trained task of a meta checkpoint (meta-LDA Algorithm 2) that ``--mask`` and
    ``--ratio`` name, and its learned ``kappa = sigmoid(omega_i)`` (eq. 12); a request that
    names no trained task, or several, is refused (an unseen task needs its omega adapted:
    :func:`lda_opt.learning.meta.adapt_omega`)."""
    from ..tasks import task_from_metadata

    tasks, kappa = info.get("tasks"), info.get("kappa")
    if not (isinstance(tasks, list) and isinstance(kappa, list) and len(kappa) == len(tasks) and tasks):
        raise ValueError(f"checkpoint {path}: its meta metadata holds no per-task kappa (trained with a fixed "
                         "omega?); give --weight")
    names = [f"{t.get('mask')} {t.get('ratio')}" for t in tasks]
    hits = [i for i, t in enumerate(tasks) if t.get("mask") == args.mask
            and (args.ratio is None or abs(float(t.get("ratio", -1)) - args.ratio) <= 1e-6)]
    if len(hits) != 1:
        raise ValueError(f"checkpoint {path} is meta-trained on the tasks {names}: --mask {args.mask}"
                         f"{'' if args.ratio is None else f' --ratio {args.ratio}'} names "
                         f"{'none' if not hits else 'several'} of them (give --mask and --ratio of one; "
                         "an unseen task needs lda_opt.learning.meta.adapt_omega)")
    return task_from_metadata(tasks[hits[0]]), float(kappa[hits[0]])


def _constants(problem, x0) -> dict:
    from ..checks import estimate_constants

    c = estimate_constants(problem, x0)
    return {"L_f": c["L_f"], "M": c["M"], "L_g": c["L_g"], "certified": c["certified"],
            "phi_star": 0.0}, c["m"]


def run(args: argparse.Namespace) -> int:
    """Solve and write ``--out DIR``; returns 0, or 130 after Ctrl-C (SIGINT).

    ``DIR`` is written all at once (:func:`lda_opt._atomic.staged_dir`): the five files go
    to a hidden sibling that is renamed to ``DIR`` at the end, so an interrupted or killed
    run leaves either the complete new folder or none (an earlier run's folder, if any,
    stays as it was).  ``DIR`` may be new, empty, or an earlier solve's output (which is
    replaced); a ``DIR`` holding other files is refused before any work.  After Ctrl-C the
    staging folder is removed and one line on stderr says so.
    """
    try:
        return _run(args) if getattr(args, "batch_dir", None) is None else _run_batch(args)
    except KeyboardInterrupt:
        print(f"lda-opt solve: interrupted; no output written ({args.out} is as it was before the run)",
              file=sys.stderr)
        return 130


#: the files ``--batch-dir`` solves (as ``--image``)
BATCH_SUFFIXES = (".png", ".npy")


def batch_files(directory) -> list:
    """The image files of ``--batch-dir`` (:data:`BATCH_SUFFIXES`), sorted by name; their
    stems name the result folders and must be distinct."""
    from pathlib import Path

    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"batch-dir: {str(d)!r} is not a directory")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in BATCH_SUFFIXES)
    if not files:
        raise ValueError(f"batch-dir: {str(d)!r} holds no {' or '.join(BATCH_SUFFIXES)} file")
    stems = [p.stem for p in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"batch-dir: several files share the stem {dup[0]!r} (their result folders would clash)")
    return files


def shard() -> tuple[int, int]:
    """``(rank, world)`` of this process: the initialized torch.distributed group's, else
    torchrun's ``RANK`` / ``WORLD_SIZE`` environment, else ``(0, 1)``."""
    import os

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    raw = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    try:
        rank, world = int(raw[0]), int(raw[1])
    except ValueError:
        raise ValueError(f"RANK and WORLD_SIZE must be integers (torchrun sets them); got {raw}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE) and WORLD_SIZE >= 1; got RANK={rank}, WORLD_SIZE={world}")
    return rank, world


def _run_batch(args: argparse.Namespace) -> int:
    """``--batch-dir``: this rank's share ``files[rank::world]``, each file a complete solve
    (``--image FILE --out OUT/STEM``); every folder is validated before the first solve."""
    from pathlib import Path

    if args.image is not None:
        raise ValueError("give either --image or --batch-dir, not both")
    files = batch_files(args.batch_dir)
    rank, world = shard()
    mine = files[rank::world]
    runs = []
    for f in mine:
        a = argparse.Namespace(**{**vars(args), "image": str(f), "out": str(Path(args.out) / f.stem),
                                  "batch_dir": None})
        _validate_args(a)  # every output folder and option, before any work
        runs.append(a)
    for i, a in enumerate(runs):
        if not args.quiet:
            print(f"[rank {rank}/{world}] {i + 1}/{len(runs)}: {a.image}")
        _run(a)
    if not args.quiet:
        print(f"[rank {rank}/{world}] solved {len(runs)} of the {len(files)} files of {args.batch_dir} into {args.out}/")
    return 0


@dataclasses.dataclass
class _Setup:
    """What :func:`_run` builds before solving: the instance, its (possibly post-phase)
    start ``x0``, the solver and its warm start, and what the report records."""

    device: torch.device
    dtype: torch.dtype
    out: object
    inst: object
    x0: torch.Tensor
    solver: object
    constants: dict
    m: int
    start: object
    phases: dict | None
    ck_path: object


def _run(args: argparse.Namespace) -> int:
    if args.checkpoint not in (None, "shipped"):
        from ..learning.mol import is_mol_checkpoint, solve_mol_checkpoint

        if is_mol_checkpoint(args.checkpoint):  # a MOL deep-equilibrium network: its own solve
            return solve_mol_checkpoint(args)
    setup = _setup(args)
    res, wall = _solve(args, setup)
    result, images = _report(args, setup, res, wall)
    _write(args, setup.out, res, result, images)
    return 0


def _setup(args: argparse.Namespace) -> _Setup:
    """Validate everything before any work, then build the instance, run a checkpoint's
    phases (if any) and the solver."""
    device, dtype, out, overrides = _validate_args(args)
    net, ck_path, ck_meta, inst = _load_inputs(args, device, dtype)
    x0 = inst.x0
    phases = st = None
    if net is not None:
        # LDA Sec. 4.3.3 / Fig. 7: the K trained phases, then Algorithm 1 from x_K at eps_K
        x_k, st = net.reconstruct(inst.problem, x0)
        x0 = x_k.detach()
        eps_k = float(st.eps.max())
        phases = {"K": net.phases, "eps_K": eps_k,
                  "psnr_K": _psnr(inst.to_image(x0), inst.truth)}
        overrides = {"eps0": eps_k, "gamma": net.gamma, "sigma": net.sigma, **overrides}
    elif args.checkpoint is not None and "eps0" in ck_meta:
        overrides = {"eps0": float(ck_meta["eps0"]), **overrides}
    solver = _make_solver(args, overrides, st)
    problem = inst.problem
    problem.check_input(x0)
    constants, m = _constants(problem, x0)
    start = None if net is None else _phase_start(solver, problem, x0, st, restart=args.eps0 is not None)
    return _Setup(device, dtype, out, inst, x0, solver, constants, m, start, phases, ck_path)


def _validate_args(args: argparse.Namespace):
    """The device, dtype, output folder (refused if it holds other files) and the
    user's hyper-parameter overrides (validated by building the solver once)."""
    device = resolve_device(args.device)
    if args.checkpoint is not None and args.regularizer is not None:
        raise ValueError("give either --regularizer or --checkpoint, not both")
    dtype = DTYPES[args.dtype or ("float32" if args.checkpoint else "float64")]
    out = out_dir("out", args.out)  # a directory, or creatable: no file on its path
    check_replaceable(out, OUTPUT_FILES)
    overrides = {k: v for k, v in (("eps0", args.eps0), ("eps_tol", args.eps_tol),
                                   ("sigma", args.sigma), ("max_iter", args.max_iter)) if v is not None}
    candidate = getattr(args, "candidate", None)
    if args.algorithm in CANDIDATE_ALGORITHMS:
        overrides["candidate"] = candidate or DEFAULT_CANDIDATE
    elif candidate not in (None, "paper"):
        raise ValueError(f"--candidate {candidate} applies to --algorithm {' or '.join(CANDIDATE_ALGORITHMS)} only; "
                         f"--algorithm {args.algorithm} has no candidate rule")
    ALGORITHMS[args.algorithm](**overrides)  # validates the user's values before any work
    return device, dtype, out, overrides


def _load_inputs(args: argparse.Namespace, device, dtype):
    """The checkpoint's network (or features), task, path and metadata, and the instance."""
    net = task = ck_path = features = None
    ck_meta: dict = {}
    if args.checkpoint is not None:
        net, features, task, ck_path, ck_meta = _load_checkpoint(args, device)
        net = None if net is None else net.to(dtype)
        features = features.to(dtype) if net is None else net.features
    weight = args.weight
    if weight is None and args.checkpoint is not None:
        weight = net.weight if net is not None else float(ck_meta["weight"])
    size = args.size
    if task is not None and args.problem == "mri":
        # the network is q; the forward model is the user's: at another size the mask is drawn
        # anew from the stored pattern, ratio and seed (lda_opt.tasks.task_at_shape)
        if size is None:
            h, w = task.shape
            size = h if h == w else (h, w)
        else:
            task = task_at_shape(task, size)
    inst = make_instance(args.problem, image=args.image, size=size, ratio=args.ratio,
                         mask=args.mask, noise=args.noise, regularizer=args.regularizer or "tv",
                         weight=weight, features=features, seed=args.seed,
                         dtype=dtype, device=device, task=task)
    return net, ck_path, ck_meta, inst


def _make_solver(args: argparse.Namespace, overrides: dict, st):
    """The solver with ``overrides``; ``eps_tol`` defaults to one level below the lowest
    start (``st``: the state after a network's phases, or ``None``)."""
    cls = ALGORITHMS[args.algorithm]
    solver = cls(**overrides)  # validates the hyper-parameters (ValueError names them)
    # after an LDA-Net's phases every sample starts at its own eps_K (a warm start)
    lowest = solver.eps0 if st is None or args.eps0 is not None else float(st.eps.min())
    if args.eps_tol is None:  # documented default: one level below the (lowest) start
        solver = solver.replace(eps_tol=min(DEFAULT_EPS_TOL, solver.sigma * lowest))
    elif solver.sigma * lowest < solver.eps_tol:
        raise ValueError(f"eps_tol = {solver.eps_tol:g} is above sigma * eps_K = {solver.sigma * lowest:g} "
                         "of a sample after the checkpoint's phases: nothing to iterate (decrease eps_tol)")
    return solver


def _solve(args: argparse.Namespace, setup: _Setup):
    """The run itself; returns the result and its wall-clock seconds."""
    progress = not args.quiet and sys.stderr.isatty()
    t0 = time.perf_counter()
    fault_point("solve:run")
    res = setup.solver.run(setup.inst.problem, setup.x0, progress=progress, state=setup.start)
    return res, time.perf_counter() - t0


def _report(args: argparse.Namespace, setup: _Setup, res, wall: float):
    """``result.json``'s content (checked finite) and the images and PSNRs of ``recon.png``."""
    inst, x0, solver, problem = setup.inst, setup.x0, setup.solver, setup.inst.problem
    truth = inst.truth
    recon = inst.to_image(res.x)
    init = inst.to_image(inst.x0)
    mag = (lambda t: t.abs()) if truth.is_complex() else (lambda t: t)
    psnr_x = _psnr(recon, truth)
    psnr_0 = _psnr(init, truth)
    s = res.summary()
    result = {
        "algorithm": args.algorithm,
        "iterations": int(res.iterations.max()),
        "converged": bool(res.converged.all()),
        "reason": _overall_reason(res.reason),
        "eps_final": float(res.eps.max()),
        "eps_of_grad_norm": float(res.grad_norm_eps.max()),
        "grad_norm_final": float(res.grad_norm.max()),
        "phi_final": float(res.phi.sum()),
        "phi_eps_final": float(res.phi_eps.sum()),
        "psnr": psnr_x,
        "psnr_x0": psnr_0,
        "passes": {"forward": int(res.forward.sum()), "backward": int(res.backward.sum())},
        "seconds": res.seconds,
        "wall_seconds": wall,
        "batch_size": int(x0.shape[0]),
        "per_sample": s,
        "config": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "solver": {"name": args.algorithm, "params": solver.config()},
        "problem": {**inst.meta, "shape": list(x0.shape), "dtype": str(setup.dtype).replace("torch.", ""),
                    "complex": bool(x0.is_complex()), "weight": float(problem.weight), "m": int(setup.m),
                    "smoothing": solver.smoothing.name, "checkpoint": setup.ck_path,
                    "phases": setup.phases, "device": str(setup.device)},
        "constants": setup.constants,
        "torch": torch.__version__,
    }
    _check_finite_json(result)
    return result, (mag(truth), mag(init), mag(recon), psnr_0, psnr_x)


def _write(args: argparse.Namespace, out, res, result: dict, images) -> None:
    """Write the five files at once (:func:`staged_dir`) and, unless ``--quiet``, say so."""
    import numpy as np

    truth, init, recon, psnr_0, psnr_x = images
    with staged_dir(out, OUTPUT_FILES) as tmp:
        (tmp / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        res.trace.to_csv(tmp / "trace.csv")
        np.save(tmp / "x.npy", res.x.detach().cpu().numpy(), allow_pickle=False)
        _plot_recon(tmp / "recon.png", truth, init, recon, psnr_0, psnr_x, args)
        _plot_convergence(tmp / "convergence.png", res.trace, args.algorithm)
    if not args.quiet:
        print(f"{args.algorithm} on {args.problem}: {result['reason']} after {result['iterations']} "
              f"iterations, eps {result['eps_final']:.3g}, ||grad phi_eps|| {result['grad_norm_final']:.3g}, "
              f"phi {result['phi_final']:.6g}, PSNR {psnr_0:.2f} -> {psnr_x:.2f} dB, "
              f"{res.seconds:.1f} s")
        print(f"wrote {out / 'result.json'}, {out / 'trace.csv'}, {out / 'x.npy'}, "
              f"{out / 'recon.png'}, {out / 'convergence.png'}")


def _phase_start(solver, problem, x0, st, restart: bool):
    """The state ``solver.run`` starts from after an LDA-Net's phases (LDA Sec. 4.3.3): the
    phases' own ``st`` (each sample at its ``eps_K``, nothing re-evaluated) when the solver
    smooths as the phases did; else ``x_K`` evaluated by the solver's ``init_state`` at each
    sample's ``eps_K`` (at ``--eps0`` when ``restart``), its forward and backward added to the
    phases' passes, so that ``passes`` counts every pass of ``q``."""
    if not restart and st.smoothing == solver.smoothing.name:
        return st
    from ..algorithms.base import PhaseParams

    s = solver.init_state(problem, x0, overrides=None if restart else PhaseParams(eps0=st.eps.detach()))
    return dataclasses.replace(s, forward=s.forward + st.forward, backward=s.backward + st.backward)


def _psnr(x: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR with peak 1 (images in [0, 1]; magnitudes for complex)."""
    from ..metrics import psnr

    if truth.is_complex():
        x, truth = x.abs(), truth.abs()
    return float(psnr(x, truth, data_range=1.0))


def _overall_reason(reasons: list[str]) -> str:
    """One reason for the batch: the first non-converged reason, else ``converged``."""
    for r in reasons:
        if r != "converged":
            return r
    return "converged"


def _check_finite_json(obj, where="result") -> None:
    """Refuse to write NaN/Inf where a number is expected (except PSNR of an exact match)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("psnr", "psnr_x0", "per_sample"):
                _check_finite_json(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_finite_json(v, f"{where}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"{where} is not finite ({obj}); the run produced a non-finite value")


def _plot_recon(path, truth, init, recon, psnr_0, psnr_x, args) -> None:
    from lda_opt._plotting import pyplot

    plt = pyplot()

    imgs = [truth, init, recon, (recon - truth).abs()]
    titles = ["ground truth", f"initial guess ({psnr_0:.2f} dB)",
              f"{args.algorithm} ({psnr_x:.2f} dB)", "|error|"]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax, im, title in zip(axes, imgs, titles):
        a = im[0, 0].detach().cpu().double().numpy()
        kw = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if title != "|error|" else {"cmap": "inferno"}
        h = ax.imshow(a, **kw)
        ax.set_title(title)
        ax.axis("off")
        if title == "|error|":
            fig.colorbar(h, ax=ax, fraction=0.046)
    fig.suptitle(f"{args.problem}: {args.algorithm}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_convergence(path, trace, name: str) -> None:
    from lda_opt._plotting import pyplot

    plt = pyplot()

    d = trace.as_dict()
    K, B = d["phi"].shape
    k = torch.arange(1, K + 1).numpy()
    # the whole-batch objective: a stopped sample keeps its last value
    phi = _carry(d["phi"], d["active"]).sum(1).numpy()
    phi_eps = _carry(d["phi_eps"], d["active"]).sum(1).numpy()
    eps = torch.where(d["active"], d["eps"], torch.full_like(d["eps"], -math.inf)).amax(1).numpy()
    gn = torch.where(d["active"], d["grad_norm"], torch.full_like(d["eps"], -math.inf)).amax(1).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].plot(k, phi, label="phi")
    axes[0].plot(k, phi_eps, "--", label="phi_eps")
    axes[0].set_ylabel("objective" + (" (sum over samples)" if B > 1 else ""))
    axes[0].legend()
    axes[1].semilogy(k, eps)
    axes[1].set_ylabel("eps" + (" (max over samples)" if B > 1 else ""))
    axes[2].semilogy(k, gn)
    axes[2].set_ylabel("||grad phi_eps||" + (" (max)" if B > 1 else ""))
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{name}: convergence")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _carry(v: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Carry each column's last active value forward over its inactive rows."""
    out = v.clone()
    for r in range(1, v.shape[0]):
        out[r] = torch.where(active[r], v[r], out[r - 1])
    return out
