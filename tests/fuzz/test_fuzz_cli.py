"""Fuzzing the argument lists of ``lda-opt solve``, ``complexity``, ``duality`` and ``train``.

Every case is one bad argument added to a valid command line and must be refused as bad
input (``_fuzz.cli_refused``): exit status 2 and exactly one stderr line
``lda-opt CMD: error: ...`` naming the option (argparse's own errors included: the CLI
prints them without the usage block), no warning, nothing on stdout, and no file created or
changed under the case's folder (no output folder, partial or complete, so no NaN written
anywhere).  The commands are run in this process by :func:`lda_opt.cli.main`.

Classes of bad input: numbers out of range, zero or negative where positivity is required,
NaN/Inf (``nan``, ``inf``, ``1e999``), integers given as floats, text that is not a number,
unknown choices, impossible device names, image paths that do not exist, are directories,
or hold garbage, truncated or wrong-content NPY files (NaN, complex, wrong rank, objects),
``--out`` paths that are files, lie under a file or hold foreign files, checkpoint paths that
do not exist or are directories, conflicting options (``--ratio`` for TV denoising,
``eps_tol > sigma * eps0``, ``--checkpoint`` with ``--regularizer``), bad ``eps_tol`` grids;
for ``train``: config files that do not exist, are directories, are empty, truncated,
non-UTF-8 or not JSON objects, with unknown keys, non-object sections, or any field of the
wrong kind or out of its range, and ``--stop-after``/``--resume``/``--out`` errors.

Limitation: the cases are those refused during validation, before any heavy work, so that
each one takes milliseconds; a bad input that only shows up during a run (a duality ``lam``
so large that every pattern is zero, say) is not covered here.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _fuzz import COUNT, Range, case, cli_refused, fuzz, out_of_range
from hypothesis import given
from hypothesis import strategies as st

# ---------------------------------------------------------------------------------------
# text values
# ---------------------------------------------------------------------------------------
NONFINITE_TEXT = st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999"])


def _parses(s: str, kind) -> bool:
    try:
        kind(s)
    except ValueError:
        return False
    return True


def not_a(kind) -> st.SearchStrategy:
    """Text that ``kind`` (``float`` or ``int``) does not parse."""
    return st.one_of(st.sampled_from(["", "x", "1,5", "1e", "0x10", "one", "--", "1 2"]),
                     st.text(max_size=6)).filter(lambda s: not _parses(s, kind) and "\x00" not in s)


def bad_text(r: Range) -> st.SearchStrategy:
    """``(text, class)`` outside the range ``r`` of an option, or not a number at all."""
    if r.integer:
        return st.one_of(
            out_of_range(r).map(lambda v: (str(v), "out of range")),
            st.floats(allow_nan=False, allow_infinity=False).map(lambda v: (repr(v), "float for an integer")),
            not_a(int).map(lambda s: (s, "not a number")))
    return st.one_of(
        out_of_range(r).map(lambda v: (repr(v), "out of range")),
        NONFINITE_TEXT.map(lambda s: (s, "NaN/Inf")),
        not_a(float).map(lambda s: (s, "not a number")))


def names_of(option: str, *more: str) -> tuple[str, ...]:
    """What a message may call ``--eps-tol``: the option, ``eps-tol`` or ``eps_tol``."""
    bare = option.lstrip("-")
    return (option, bare, bare.replace("-", "_"), *more)


def unknown_choice(choices) -> st.SearchStrategy:
    return st.text(min_size=0, max_size=8).filter(lambda s: s not in choices and "\x00" not in s)


class Case:
    """A fresh folder for one generated case (a context manager)."""

    def __enter__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="lda-fuzz-")
        return self._tmp.__enter__()

    def __exit__(self, *exc):
        return self._tmp.__exit__(*exc)


def _bad_out(kind: str, d: str) -> str:
    """An ``--out`` that cannot be an output folder (created under ``d``)."""
    f = os.path.join(d, "file")
    with open(f, "w") as fh:
        fh.write("not a folder\n")
    if kind == "file":
        return f
    if kind == "under a file":
        return os.path.join(f, "sub", "out")
    if kind == "foreign files":
        o = os.path.join(d, "busy")
        os.mkdir(o)
        with open(os.path.join(o, "notes.txt"), "w") as fh:
            fh.write("mine\n")
        return o
    return ""  # empty


#: bad --out folders ("foreign files": only solve refuses a folder of other files, as it replaces
#: the folder; complexity and duality add their files to an existing one)
OUT_KINDS = ["file", "under a file", "foreign files", "empty"]

# ---------------------------------------------------------------------------------------
# lda-opt solve
# ---------------------------------------------------------------------------------------
SOLVE_NUMBERS = {
    "--size": Range(4, integer=True), "--noise": Range(0.0, lo_open=False), "--weight": Range(0.0),
    "--eps0": Range(0.0), "--eps-tol": Range(0.0), "--sigma": Range(0.0), "--max-iter": COUNT,
    "--seed": Range(0, integer=True), "--ratio": Range(0.0, 1.0, hi_open=False),
}
SOLVE_CHOICES = {"--problem": ("tv-denoise", "cs", "mri"), "--algorithm": ("agd", "elda", "gd", "lda", "meta-lda"),
                 "--mask": ("radial", "cartesian"), "--regularizer": ("tv", "l1"), "--dtype": ("float32", "float64")}
SOLVE_DEFECTS = [*(f"number {o}" for o in SOLVE_NUMBERS), "size too large", "choice", "device",
                 *(f"image: {k}" for k in ("missing", "directory", "garbage", "truncated npy", "npy nan",
                                           "npy complex", "npy rank", "npy object", "unknown name")),
                 *(f"out: {k}" for k in OUT_KINDS), "checkpoint: missing", "checkpoint: directory",
                 "checkpoint: no config", "checkpoint with regularizer", "shipped checkpoint for tv-denoise",
                 "ratio for tv-denoise", "eps_tol above sigma*eps0"]


def _base_solve(out: str, problem: str) -> list[str]:
    return ["solve", "--quiet", "--out", out, "--problem", problem, "--size", "8", "--max-iter", "3",
            "--eps-tol", "0.5"]


def _npy(path: str, kind: str, seed: int) -> None:
    g = np.random.default_rng(seed)
    if kind == "npy nan":
        a = g.random((8, 8))
        a[seed % 8, (seed // 8) % 8] = [math.nan, math.inf, -math.inf][seed % 3]
        np.save(path, a)
    elif kind == "npy complex":
        np.save(path, g.random((8, 8)) + 1j * g.random((8, 8)))
    elif kind == "npy rank":
        np.save(path, g.random([(8,), (2, 8, 8), (1, 1, 8, 8), ()][seed % 4]))
    elif kind == "npy object":
        np.save(path, np.array([1, "a", None], dtype=object), allow_pickle=True)
    else:  # truncated: a valid file cut short (header or data)
        np.save(path, g.random((8, 8)))
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: seed % (len(data) - 1)])


@pytest.mark.parametrize("defect", SOLVE_DEFECTS)
@fuzz(len(SOLVE_DEFECTS))
@given(st.sampled_from(["tv-denoise", "cs", "mri"]), st.integers(0, 2**16), st.data())
def test_solve_refuses_bad_arguments(defect, problem, seed, data):
    case(defect)
    with Case() as d:
        out = os.path.join(d, "out")
        extra: list[str] = []
        if defect.startswith("number "):
            opt = defect.split()[1]
            if opt == "--ratio" and problem == "tv-denoise":
                problem = "cs"
            text, why = data.draw(bad_text(SOLVE_NUMBERS[opt]))
            case(f"{opt}: {why}")
            extra, names = [f"{opt}={text}"], names_of(opt)
        elif defect == "size too large":
            extra, names = [f"--size={data.draw(st.integers(8193, 10**12))}"], ("size",)
        elif defect == "choice":
            opt = data.draw(st.sampled_from(sorted(SOLVE_CHOICES)))
            extra, names = [f"{opt}={data.draw(unknown_choice(SOLVE_CHOICES[opt]))}"], names_of(opt)
        elif defect == "device":
            dev = data.draw(st.one_of(st.sampled_from(["tpu", "gpu", "meta", "xla", "cuda:99", "cuda:-1", "",
                                                       "cpu:x", "mps", "cuda"]),
                                      st.text(max_size=6)).filter(lambda s: _bad_device(s)))
            extra, names = [f"--device={dev}"], ("device",)
        elif defect.startswith("image: "):
            kind = defect.split(": ")[1]
            names = ("image",)
            if kind == "missing":
                path = os.path.join(d, "nope" + data.draw(st.sampled_from([".png", ".npy", ".jpg", ".tif"])))
            elif kind == "directory":
                path = os.path.join(d, "folder" + data.draw(st.sampled_from([".png", ".npy"])))
                os.mkdir(path)
            elif kind == "garbage":
                path = os.path.join(d, "img" + data.draw(st.sampled_from([".png", ".npy", ".jpg", ".tif", ".bmp"])))
                with open(path, "wb") as fh:
                    fh.write(data.draw(st.binary(min_size=0, max_size=64)))
            elif kind == "unknown name":
                path = data.draw(st.from_regex(r"[a-z_]{1,10}", fullmatch=True).filter(lambda s: s not in _IMAGES))
            else:
                path = os.path.join(d, "img.npy")
                _npy(path, kind, seed)
            extra = [f"--image={path}"]
        elif defect.startswith("out: "):
            out, names = _bad_out(defect.split(": ")[1], d), ("out",)
        elif defect.startswith("checkpoint"):
            names = ("checkpoint", "safetensors", "not found")
            if defect == "checkpoint: missing":
                extra = [f"--checkpoint={os.path.join(d, 'none.safetensors')}"]
            elif defect == "checkpoint: directory":
                p = os.path.join(d, data.draw(st.sampled_from(["dir.safetensors", "dir"])))
                os.mkdir(p)
                extra = [f"--checkpoint={p}"]
            elif defect == "checkpoint: no config":
                p = os.path.join(d, "net.safetensors")
                with open(p, "wb") as fh:
                    fh.write(data.draw(st.binary(max_size=32)))
                extra = [f"--checkpoint={p}"]
            else:  # with --regularizer
                extra = ["--checkpoint=x.safetensors", f"--regularizer={data.draw(st.sampled_from(['tv', 'l1']))}"]
        elif defect == "shipped checkpoint for tv-denoise":
            problem, extra, names = "tv-denoise", ["--checkpoint=shipped"], ("--problem cs or mri",)
        elif defect == "ratio for tv-denoise":
            problem, names = "tv-denoise", ("ratio",)
            extra = [f"--ratio={data.draw(st.floats(0.01, 1.0))!r}"]
        else:  # eps_tol above sigma * eps0: nothing to iterate
            sigma = data.draw(st.floats(1e-2, 1e4))
            eps0 = data.draw(st.floats(1e-6, 1e-1))
            tol = sigma * eps0 * data.draw(st.floats(1.01, 1e6))
            extra, names = [f"--sigma={sigma!r}", f"--eps0={eps0!r}", f"--eps-tol={tol!r}"], ("eps_tol",)
        cli_refused([*_base_solve(out, problem), *extra], d, *names)


_IMAGES = None


def _bad_device(s: str) -> bool:
    """``s`` is not a device a solve can run on here."""
    try:
        dev = torch.device(s)
    except (RuntimeError, TypeError, ValueError):
        return True
    if dev.type == "cuda":
        return not torch.cuda.is_available() or (dev.index is not None and dev.index >= torch.cuda.device_count())
    if dev.type == "mps":
        return not torch.backends.mps.is_available()
    return dev.type != "cpu"


def _image_names():
    from lda_opt.data import list_images

    return set(list_images()) | {"shepp-logan"}


_IMAGES = _image_names()


def test_solve_refuses_an_empty_npy_image_in_one_line():
    with Case() as d:
        path = os.path.join(d, "empty.npy")
        np.save(path, np.zeros((0, 0)))
        cli_refused([*_base_solve(os.path.join(d, "out"), "tv-denoise"), f"--image={path}"], d, "image")


# ---------------------------------------------------------------------------------------
# lda-opt complexity
# ---------------------------------------------------------------------------------------
COMPLEXITY_NUMBERS = {"--size": Range(8, integer=True), "--weight": Range(0.0), "--max-iter": COUNT,
                      "--n-boot": Range(100, integer=True), "--seed": Range(0, integer=True)}
COMPLEXITY_DEFECTS = [*(f"number {o}" for o in COMPLEXITY_NUMBERS), "algorithm", "problem",
                      "grid: too few", "grid: not positive", "grid: nan/inf", "grid: repeated", "grid: narrow",
                      "grid: above sigma*eps0", "grid: not a number", "out: file", "out: under a file",
                      "out: empty"]


@st.composite
def grid(draw, defect: str):
    """``--eps-tol`` values (6 to 9, spanning 2 decades below 1) with one defect."""
    n = draw(st.integers(6, 9))
    vals = [10.0 ** (-2.0 * i / (n - 1)) * 0.9 for i in range(n)]
    i = draw(st.integers(0, n - 1))
    if defect == "too few":
        return [repr(v) for v in vals[: draw(st.integers(0, 5))]]
    if defect == "not positive":
        vals[i] = draw(st.floats(max_value=0.0, min_value=-1e300))
    elif defect == "nan/inf":
        return [draw(NONFINITE_TEXT) if j == i else repr(v) for j, v in enumerate(vals)]
    elif defect == "repeated":
        vals[i] = vals[(i + 1) % n]
    elif defect == "narrow":
        vals = [0.5 * (1 - 0.01 * j) for j in range(n)]
    elif defect == "above sigma*eps0":
        vals[0] = draw(st.floats(1.5, 1e300))  # sigma * eps0 = 1.4 (LDA), 1.0 (MetaLDA, ELDA)
    else:
        return [draw(not_a(float)) if j == i else repr(v) for j, v in enumerate(vals)]
    return [repr(v) for v in vals]


@pytest.mark.parametrize("defect", COMPLEXITY_DEFECTS)
@fuzz(len(COMPLEXITY_DEFECTS))
@given(st.sampled_from(["lda", "meta-lda", "elda"]), st.data())
def test_complexity_refuses_bad_arguments(defect, algorithm, data):
    case(defect)
    with Case() as d:
        out = os.path.join(d, "out")
        extra: list[str] = []
        if defect.startswith("number "):
            opt = defect.split()[1]
            text, why = data.draw(bad_text(COMPLEXITY_NUMBERS[opt]))
            case(f"{opt}: {why}")
            extra, names = [f"{opt}={text}"], names_of(opt)
        elif defect in ("algorithm", "problem"):
            valid = ("lda", "meta-lda", "elda") if defect == "algorithm" else ("tv-mri", "cnn-mri")
            extra, names = [f"--{defect}={data.draw(unknown_choice(valid))}"], (defect,)
        elif defect.startswith("grid: "):
            vals = data.draw(grid(defect.split(": ")[1]))
            extra, names = _nargs_safe("--eps-tol", vals), ("eps_tol", "eps-tol")
        else:
            out, names = _bad_out(defect.split(": ")[1], d), ("out",)
        cli_refused(["complexity", "--quiet", "--tiny", f"--algorithm={algorithm}", "--out", out, *extra], d, *names)


def _nargs_safe(option: str, vals: list[str]) -> list[str]:
    """``--opt v1 v2 ...`` for an ``nargs`` option whose values may start with ``-``: those are
    written as ``' -1'`` (argparse takes a token that starts with a blank as a value, and
    ``float(' -1') == -1``)."""
    return [option, *(" " + v if v.startswith("-") else v for v in vals)]


# ---------------------------------------------------------------------------------------
# lda-opt duality
# ---------------------------------------------------------------------------------------
DUALITY_NUMBERS = {
    "--noise": (Range(0.0, lo_open=False), ("noise",)), "--n-train": (COUNT, ("n_train",)),
    "--n-test": (COUNT, ("n_test",)), "--filters": (COUNT, ("n_filters", "filters")),
    "--lam": (Range(0.0, lo_open=False), ("lam",)), "--beta": (Range(0.0), ("beta",)),
    "--epochs": (COUNT, ("epochs",)), "--patterns": (COUNT, ("n_samples", "patterns")),
    "--u-scale": (Range(0.0), ("u_scale", "u-scale")), "--dual-iters": (COUNT, ("iters",)),
    "--filter-size": (COUNT, ("filter_size", "filter-size")),
}
DUALITY_DEFECTS = [*(f"number {o}" for o in DUALITY_NUMBERS), "even filter size", "digits exhausted",
                   "seeds", "optimizers", "inits", "u-scale-sweep", "dual-method", "cvxpy-solver",
                   "out: file", "out: under a file", "out: empty"]


@pytest.mark.parametrize("defect", DUALITY_DEFECTS)
@fuzz(len(DUALITY_DEFECTS))
@given(st.data())
def test_duality_refuses_bad_arguments(defect, data):
    case(defect)
    with Case() as d:
        out = os.path.join(d, "out")
        extra: list[str] = []
        if defect.startswith("number "):
            opt = defect.split()[1]
            r, names = DUALITY_NUMBERS[opt]
            text, why = data.draw(bad_text(r))
            case(f"{opt}: {why}")
            extra, names = [f"{opt}={text}"], (*names, opt)
        elif defect == "even filter size":
            extra, names = [f"--filter-size={2 * data.draw(st.integers(1, 50))}"], ("filter_size",)
        elif defect == "digits exhausted":
            a = data.draw(st.integers(1, 1797))
            b = data.draw(st.integers(max(1, 1798 - a), 10**6))
            extra, names = [f"--n-train={a}", f"--n-test={b}"], ("n_train + n_test",)
        elif defect == "seeds":
            vals = data.draw(st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=4)
                             .filter(lambda v: any(s < 0 for s in v)).map(lambda v: [str(s) for s in v])
                             | st.just([]) | st.lists(not_a(int), min_size=1, max_size=2))
            extra, names = _nargs_safe("--seeds", vals), ("seeds",)
        elif defect in ("optimizers", "inits"):
            from lda_opt.dual.primal import INITS, OPTIMIZERS

            valid = OPTIMIZERS if defect == "optimizers" else INITS
            vals = data.draw(st.lists(st.sampled_from(valid), max_size=2))
            bad = data.draw(st.lists(unknown_choice(valid).filter(lambda s: not s.startswith("-")), max_size=2))
            vals = vals + bad if bad or not vals else []
            extra, names = [f"--{defect}", *vals], (defect,)
        elif defect == "u-scale-sweep":
            vals = data.draw(st.lists(st.floats(0.1, 10.0).map(repr), max_size=2))
            vals.insert(data.draw(st.integers(0, len(vals))),
                        data.draw(st.one_of(out_of_range(Range(0.0)).map(repr), NONFINITE_TEXT, not_a(float))))
            extra, names = _nargs_safe("--u-scale-sweep", vals), ("u_scale_sweep", "u-scale-sweep")
        elif defect == "dual-method":
            extra, names = [f"--dual-method={data.draw(unknown_choice(('admm', 'adam')))}"], ("method",)
        elif defect == "cvxpy-solver":
            s = data.draw(unknown_choice(()).filter(lambda s: s.upper() not in ("CLARABEL", "SCS", "NONE")))
            extra, names = [f"--cvxpy-solver={s}"], ("cvxpy-solver",)
        else:
            out, names = _bad_out(defect.split(": ")[1], d), ("out",)
        cli_refused(["duality", "--quick", "--quiet", "--out", out, *extra], d, *names)


# ---------------------------------------------------------------------------------------
# lda-opt train
# ---------------------------------------------------------------------------------------
TINY = {
    "name": "tiny", "seed": 3,
    "task": {"kind": "mri", "ratio": 0.3, "shape": [16, 16], "mask": "radial", "mask_seed": 1},
    "data": {"train": 6, "val": 2, "seed": 5},
    "net": {"width": 2, "depth": 1, "alpha": 0.5, "tau": 0.5, "weight": 0.1},
    "train": {"phases": 3, "first_phases": 1, "phase_step": 2, "epochs_first": 1, "epochs_stage": 1,
              "batch_size": 4, "lr": 0.01},
}
SEED, POS, NONNEG, UNIT = Range(0, integer=True), Range(0.0), Range(0.0, lo_open=False), Range(0.0, 1.0)
#: (section, field) -> the valid range (numbers) or the valid choices (strings)
FIELDS = {
    ("", "seed"): SEED,
    ("task", "ratio"): Range(0.0, 1.0, hi_open=False),  # (0, 1] for MRI (TINY's kind) ("task", "matrix_seed"): SEED, ("task", "init_blocks"): COUNT,
    ("task", "init_size"): Range(33, integer=True), ("task", "init_seed"): SEED, ("task", "mask_seed"): SEED,
    ("task", "noise"): NONNEG, ("task", "noise_seed"): SEED, ("task", "mask"): ("cartesian", "radial", "variable_density"),
    ("task", "kind"): ("block-cs", "mri"),
    ("data", "train"): COUNT, ("data", "val"): COUNT, ("data", "seed"): SEED, ("data", "size"): Range(33, integer=True),
    ("data", "natural"): SEED, ("data", "min_std"): NONNEG, ("data", "max_phase"): Range(0.0, math.pi, False, False),
    ("net", "algorithm"): ("lda", "gd", "agd"), ("net", "init"): ("xavier", "tv"),
    ("net", "width"): COUNT, ("net", "depth"): COUNT, ("net", "kernel_size"): COUNT,
    **{("net", n): POS for n in ("delta", "alpha", "tau", "eps0", "sigma", "weight")},
    ("net", "theta"): UNIT, ("net", "gamma"): UNIT, ("net", "init_noise"): NONNEG,
    **{("train", n): COUNT for n in ("phases", "phase_step", "epochs_first", "batch_size", "threads")},
    ("train", "first_phases"): Range(1, integer=True), ("train", "epochs_stage"): SEED, ("train", "lr"): POS,
    ("train", "ssim_weight"): NONNEG, ("train", "select"): ("last", "best_val"), ("train", "dtype"): ("float32", "float64"),
}
JSON_WRONG_KIND = st.one_of(st.booleans(), st.none(), st.text(max_size=5), st.lists(st.integers(0, 3), max_size=2),
                            st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


def _normalized(s: str) -> str:
    return s.strip().lower().replace("_", "-")


@st.composite
def bad_field(draw, spec):
    """A JSON value outside ``spec`` (a range, or a tuple of valid strings)."""
    if isinstance(spec, tuple):
        return draw(st.one_of(st.text(max_size=10).filter(lambda s: s not in spec and _normalized(s) not in spec),
                              st.none(), st.booleans(), st.integers(), st.lists(st.sampled_from(spec), max_size=1)))
    parts = [out_of_range(spec), JSON_WRONG_KIND, st.sampled_from([math.nan, math.inf, -math.inf])]
    if spec.integer:
        parts.append(st.floats(allow_nan=False, allow_infinity=False))
    return draw(st.one_of(parts))


TRAIN_DEFECTS = ["field", "unknown key", "unknown section key", "section not an object", "not an object",
                 "name", "pair field", "lists", "missing file", "directory", "empty", "truncated",
                 "not UTF-8", "not JSON", "stop-after", "resume without state", "out: file", "out: under a file"]


@pytest.mark.parametrize("defect", TRAIN_DEFECTS)
@fuzz(len(TRAIN_DEFECTS))
@given(st.data())
def test_train_refuses_bad_configs_and_arguments(defect, data):
    case(defect)
    with Case() as d:
        cfg = json.loads(json.dumps(TINY))
        path = os.path.join(d, "config.json")
        out = os.path.join(d, "out")
        extra: list[str] = []
        text = None
        names: tuple[str, ...] = ("config",)
        if defect == "field":
            sec, field = data.draw(st.sampled_from(sorted(FIELDS)))
            value = data.draw(bad_field(FIELDS[(sec, field)]))
            (cfg if not sec else cfg.setdefault(sec, {}))[field] = value
            names = (field, "problem") if field == "kind" else (field,)
            case(f"field {sec}.{field}")
        elif defect == "pair field":
            sec, field = data.draw(st.sampled_from([("task", "shape"), ("train", "betas")]))
            good = [16, 16] if field == "shape" else [0.9, 0.999]
            bad = data.draw(st.one_of(
                st.lists(st.integers(8, 64), max_size=4).filter(lambda v: len(v) != 2) if field == "shape"
                else st.lists(st.floats(0.0, 0.99), max_size=4).filter(lambda v: len(v) != 2),
                JSON_WRONG_KIND.filter(lambda v: not (isinstance(v, list) and len(v) == 2)),
                st.tuples(st.integers(0, 1), out_of_range(Range(8, integer=True)) if field == "shape"
                          else out_of_range(Range(0.0, 1.0, lo_open=False))).map(
                    lambda t: [t[1], good[1]] if t[0] else [good[0], t[1]])))
            cfg[sec][field] = bad
            names = (field,)
        elif defect == "lists":
            field = data.draw(st.sampled_from(["val_images", "scales", "stage_lr"]))
            names = (field,)
            if field == "val_images":
                from lda_opt.data import TRAIN_IMAGES

                cfg["task"] = {"kind": "block-cs"}
                v = data.draw(st.one_of(st.text(max_size=6), st.lists(st.text(max_size=6).filter(
                    lambda s: s not in TRAIN_IMAGES), min_size=1, max_size=2), st.just(list(TRAIN_IMAGES)),
                    st.lists(st.integers(), min_size=1, max_size=2)))
                cfg["data"]["val_images"] = v
            elif field == "scales":
                cfg["task"] = {"kind": "block-cs"}
                cfg["data"]["scales"] = data.draw(st.one_of(
                    st.lists(st.integers(-5, 32), min_size=1, max_size=3), st.just([256]), st.just([64, 64]),
                    st.lists(st.text(max_size=3), min_size=1, max_size=2), st.integers(33, 99)))
            else:
                n = data.draw(st.integers(0, 4).filter(lambda n: n != 2))  # TINY has 2 stages
                cfg["train"]["stage_lr"] = data.draw(st.one_of(
                    st.lists(st.floats(1e-4, 1e-2), min_size=n, max_size=n),
                    st.lists(st.floats(max_value=0.0, min_value=-1.0), min_size=2, max_size=2),
                    st.text(max_size=3)))
        elif defect == "unknown key":
            key = data.draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in cfg and k not in
                                                                   ("task", "data", "net", "train")))
            cfg[key], names = 1, (key, repr(key)[1:-1])
        elif defect == "unknown section key":
            from dataclasses import fields

            from lda_opt.learning.config import DataConfig, NetConfig, OptimConfig, TaskConfig

            sec = data.draw(st.sampled_from(["task", "data", "net", "train"]))
            known = {f.name for f in fields({"task": TaskConfig, "data": DataConfig, "net": NetConfig,
                                            "train": OptimConfig}[sec])}
            key = data.draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in known))
            cfg[sec][key], names = 0, (key, repr(key)[1:-1])
        elif defect == "section not an object":
            sec = data.draw(st.sampled_from(["task", "data", "net", "train"]))
            cfg[sec], names = data.draw(JSON_WRONG_KIND.filter(lambda v: not isinstance(v, dict))), (sec,)
        elif defect == "not an object":
            cfg = data.draw(st.one_of(st.lists(st.integers(), max_size=2), st.integers(), st.text(max_size=4),
                                      st.none(), st.booleans()))
        elif defect == "name":
            cfg["name"] = data.draw(st.one_of(
                st.sampled_from([".", "..", "...", "", "-", "_.", "a/b", "../x", "x y", "é/"]),
                st.text(max_size=6).filter(lambda s: not any(c.isalnum() for c in s)
                                           or not all(c.isalnum() or c in "-_." for c in s)),
                st.integers(), st.none(), st.lists(st.text(max_size=2), max_size=1)))
            names = ("name",)
        elif defect == "missing file":
            path = os.path.join(d, data.draw(st.sampled_from(["none.json", "sub/none.json"])))
        elif defect == "directory":
            os.mkdir(os.path.join(d, "cfgdir"))
            path = os.path.join(d, "cfgdir")
        elif defect == "empty":
            text = b""
        elif defect == "truncated":
            full = json.dumps(cfg).encode()
            text = full[: data.draw(st.integers(0, len(full) - 2))]
        elif defect == "not UTF-8":
            text = data.draw(st.binary(min_size=1, max_size=40).filter(lambda b: not _utf8(b)))
        elif defect == "not JSON":
            text = data.draw(st.sampled_from([b"name: tiny\n", b"{'name': 'tiny'}", b"[1, 2", b"{\"a\": }",
                                              b"\x00\x01", b"NaN NaN"]))
        elif defect == "stop-after":
            text_, why = data.draw(bad_text(COUNT))
            case(f"--stop-after: {why}")
            extra, names = [f"--stop-after={text_}"], ("stop-after", "stop_after")
        elif defect == "resume without state":
            extra, names = ["--resume"], ("resume",)
        else:
            out, names = _bad_out(defect.split(": ")[1], d), ("out",)
        if path == os.path.join(d, "config.json"):
            with open(path, "wb") as fh:
                fh.write(json.dumps(cfg).encode() if text is None else text)
        cli_refused(["train", "--quiet", "--config", path, "--out", out, *extra], d, *names)


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
