"""Fuzzing every solver's constructor, ``from_config`` and ``run``.

Classes of bad input: hyper-parameters out of their documented range (zero and negative
tolerances and steps, factors outside (0, 1)), NaN/Inf, the wrong kind (bool, None, str,
complex, sequences, multi-element or complex tensors, floats for integers), inconsistent
tolerances (``sigma * eps0 < eps_tol``), unknown keywords and smoothing names, smoothings
that are not usable (a class, a string, the abstract base, a changed ``gap_factor``/``name``); for ``run``:
NaN/Inf and overflowing ``x0``, wrong rank/shape/batch (empty batches included), float16,
bfloat16, integer and bool dtypes, float32 vs float64 and real vs complex mismatches, a
non-tensor ``x0``, a non-problem, a non-callable callback, a non-bool ``progress``, a
per-sample weight of the wrong length, and feature maps of the wrong dtype, shape or that
return NaN/Inf.  Each case is the exact exception type with a message naming the parameter,
raised before any iteration (the callback is never called).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from _fuzz import (
    BAD_COMPLEX_DTYPES,
    BAD_REAL_DTYPES,
    COUNT,
    POSITIVE,
    UNIT_OPEN,
    Range,
    bad_value,
    case,
    fuzz,
    refused,
    to_dtype,
)
from _fuzz import tensor as rand_tensor
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import lda_opt as lo

SOLVERS = [lo.LDA, lo.MetaLDA, lo.ELDA, lo.GD, lo.AGD]

#: the documented range of every hyper-parameter (README / docstrings), per solver
COMMON = {"eps0": POSITIVE, "gamma": UNIT_OPEN, "sigma": POSITIVE, "eps_tol": POSITIVE,
          "max_iter": COUNT, "max_linesearch": COUNT}
BACKTRACKING = {"alpha": POSITIVE, "c": POSITIVE, "shrink": UNIT_OPEN}
#: the candidate-rule fields of LDA and ELDA (lda_opt/algorithms/candidates.py)
CANDIDATE = {"memory": COUNT, "candidate_shrink": UNIT_OPEN, "candidate_linesearch": COUNT}
RANGES = {
    lo.LDA: {**COMMON, **BACKTRACKING, "tau": Range(0.0, optional=True), **CANDIDATE},
    lo.GD: {**COMMON, **BACKTRACKING},
    lo.AGD: {**COMMON, **BACKTRACKING, "theta": Range(0.0, 1.0, lo_open=False)},
    lo.MetaLDA: {**COMMON, "alpha": POSITIVE, "tau": POSITIVE, "a": POSITIVE, "rho": UNIT_OPEN},
    lo.ELDA: {**COMMON, **{n: POSITIVE for n in ("alpha", "gamma_u", "alpha_bar", "eta1", "eta2", "eta3")},
              "rho": UNIT_OPEN, **CANDIDATE},
}
FLAGS = {lo.LDA: ("linesearch", "warm_start", "reset_memory"), lo.GD: ("linesearch", "warm_start"),
         lo.AGD: ("linesearch",), lo.MetaLDA: (), lo.ELDA: ("reset_memory",)}
#: fields that take one of a few names (``candidate``: "paper", "lbfgs", "nesterov")
CHOICES = {lo.LDA: ("candidate",), lo.GD: (), lo.AGD: (), lo.MetaLDA: (), lo.ELDA: ("candidate",)}


def test_ranges_cover_every_field():
    """The table above lists every hyper-parameter of every solver (a new field gets fuzzed)."""
    for cls in SOLVERS:
        names = {f.name for f in dataclasses.fields(cls)} - {"smoothing"}
        assert names == set(RANGES[cls]) | set(FLAGS[cls]) | set(CHOICES[cls]), cls.name


@pytest.mark.parametrize("cls", [c for c in SOLVERS if CHOICES[c]], ids=lambda c: c.name)
@fuzz(2)
@given(st.data())
def test_bad_candidate_is_refused_naming_it(cls, data):
    """An unknown name is a ValueError, anything but a str a TypeError, both naming the field."""
    value = data.draw(st.one_of(st.text(max_size=8).filter(lambda t: t not in ("paper", "lbfgs", "nesterov")),
                                st.integers(), st.none(), st.booleans(), st.floats()))
    exc = ValueError if isinstance(value, str) else TypeError
    case("unknown name" if exc is ValueError else "wrong kind")
    with refused(exc, "candidate"):
        cls(candidate=value)


HYPERPARAMETERS = [(cls, name) for cls in SOLVERS for name in sorted(RANGES[cls])]


@pytest.mark.parametrize("cls, name", HYPERPARAMETERS, ids=[f"{c.name}-{n}" for c, n in HYPERPARAMETERS])
@fuzz(len(HYPERPARAMETERS))
@given(st.data())
def test_bad_hyperparameter_is_refused_naming_it(cls, name, data):
    value, exc, kind = data.draw(bad_value(RANGES[cls][name]))
    case(kind)
    with refused(exc, name):
        cls(**{name: value})


OTHER = ["flag", "smoothing", "smoothing fields", "keyword", "positional", "tolerances"]


@pytest.mark.parametrize("what", OTHER)
@fuzz(len(OTHER))
@given(st.sampled_from(SOLVERS), st.data())
def test_bad_flag_smoothing_keyword_or_tolerances_are_refused(what, cls, data):
    case(what)
    if what == "flag" and FLAGS[cls]:
        name = data.draw(st.sampled_from(FLAGS[cls]))
        value = data.draw(st.one_of(st.integers(0, 1), st.none(), st.text(max_size=3), st.floats()))
        with refused(TypeError, name):
            cls(**{name: value})
    elif what in ("smoothing", "flag"):
        value = data.draw(st.one_of(st.sampled_from([lo.Huber, lo.Sqrt, "huber", "sqrt", None, 0.5,
                                                     lo.smoothing.Smoothing()]),  # (no value/dual)
                                    st.text(max_size=5)))
        with refused(TypeError, "smoothing"):
            cls(smoothing=value)
    elif what == "smoothing fields":  # gap_factor and name are the smoothing's, not parameters
        kind = data.draw(st.sampled_from([lo.Huber, lo.Sqrt]))
        field = data.draw(st.sampled_from(["gap_factor", "name"]))
        default = getattr(kind(), field)
        value = data.draw(st.one_of(st.floats(), st.integers(), st.text(max_size=6), st.none())
                          .filter(lambda v: not (type(v) is type(default) and v == default)))
        with refused(ValueError, field):
            kind(**{field: value})
    elif what == "keyword":
        names = {f.name for f in dataclasses.fields(cls)}
        key = data.draw(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k not in names))
        with refused(TypeError, key):
            cls(**{key: 1.0})
    elif what == "positional":
        with refused(TypeError, "positional"):
            cls(data.draw(st.floats(0.1, 1.0)))
    else:  # every value in range, but sigma * eps0 < eps_tol: nothing to iterate
        eps0 = data.draw(st.floats(1e-8, 1.0))
        sigma = data.draw(st.floats(1e-3, 1e4))
        eps_tol = sigma * eps0 * data.draw(st.floats(1.001, 1e6))
        with refused(ValueError, "eps_tol"):
            cls(eps0=eps0, sigma=sigma, eps_tol=eps_tol)


CONFIG_DEFECTS = ["not a dict", "smoothing name", "value", "unknown key"]


@pytest.mark.parametrize("what", CONFIG_DEFECTS)
@fuzz(len(CONFIG_DEFECTS))
@given(st.sampled_from(SOLVERS), st.data())
def test_from_config_refuses_bad_params(what, cls, data):
    good = cls(eps_tol=min(1.0, cls().sigma * cls().eps0)).config()
    case(what)
    if what == "not a dict":
        params = data.draw(st.one_of(st.none(), st.lists(st.integers(), max_size=2), st.text(max_size=4),
                                     st.floats()))
        with refused(TypeError, "params"):
            cls.from_config(params)
    elif what == "smoothing name":
        name = data.draw(st.text(max_size=8).filter(lambda s: s not in ("huber", "sqrt")))
        with refused(ValueError, "smoothing"):
            cls.from_config({**good, "smoothing": name})
    elif what == "value":
        name = data.draw(st.sampled_from(sorted(RANGES[cls])))
        value, exc, _ = data.draw(bad_value(RANGES[cls][name]))
        with refused(exc, name):
            cls.from_config({**good, name: value})
    else:
        key = data.draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda k: k not in good))
        with refused(TypeError, key):
            cls.from_config({**good, key: 0.5})


# ---------------------------------------------------------------------------------------
# run(problem, x0, callback, progress)
# ---------------------------------------------------------------------------------------
def _problem(kind: str, B: int, H: int, W: int, dtype: torch.dtype, seed: int):
    """A small valid problem and x0: TV denoising, block CS (Matrix) or MRI (complex)."""
    q = lo.features.FiniteDifference()
    if kind == "identity":
        y = rand_tensor((B, 1, H, W), dtype, seed)
        return lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), q, 0.1), y.clone()
    if kind == "matrix":
        Phi = rand_tensor((max(1, H * W // 2), H * W), dtype, seed)
        A = lo.operators.Matrix(Phi, (1, H, W))
        x = rand_tensor((B, 1, H, W), dtype, seed + 1)
        return lo.Problem(lo.LeastSquares(A, A(x)), q, 0.1), x
    mask = torch.zeros(H, W)
    mask[0, 0] = mask[-1, -1] = 1
    A = lo.operators.MRI(mask)
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    y = A(rand_tensor((B, 1, H, W), cdtype, seed))
    return lo.Problem(lo.LeastSquares(A, y), q, 0.1), A.H(y)


class _Broken(nn.Module):
    """A feature map that returns NaN/Inf features, or features of the wrong batch size."""

    def __init__(self, how: str, value: float = math.nan) -> None:
        super().__init__()
        self.how, self.value = how, value

    def forward(self, x):
        g = lo.features.FiniteDifference()(x)
        if self.how == "nonfinite":
            return g * self.value
        if self.how == "batch":
            return g[:-1] if g.shape[0] > 1 else torch.cat([g, g])
        return g.flatten()  # "rank": not (B, d, ...)


X0_DEFECTS = ["nan/inf", "overflow", "rank", "spatial shape", "batch", "empty batch", "dtype: half/int/bool",
              "float32 vs float64", "real vs complex", "not a tensor", "not a problem", "callback",
              "progress", "weight length", "feature dtype", "feature output", "feature nan/inf"]


@pytest.mark.parametrize("defect", X0_DEFECTS)
@fuzz(len(X0_DEFECTS))
@given(st.sampled_from(SOLVERS), st.sampled_from(["identity", "matrix", "mri"]),
       st.integers(1, 3), st.integers(2, 5), st.integers(2, 5), st.sampled_from([torch.float32, torch.float64]),
       st.integers(0, 2**16), st.data())
def test_bad_run_input_is_refused_before_any_iteration(defect, cls, kind, B, H, W, dtype, seed, data):
    case(defect)
    problem, x0 = _problem(kind, B, H, W, dtype, seed)
    solver = cls(eps_tol=min(1.0, cls().sigma * cls().eps0), max_iter=5)
    calls = []
    callback = lambda k, s, r: calls.append(k)
    args = {"problem": problem, "x0": x0, "callback": callback}
    exc, names = ValueError, ("x0",)
    if defect == "nan/inf":
        v = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        flat = x0.clone().view(-1)
        flat[seed % flat.numel()] = v
        args["x0"] = flat.view(x0.shape)
    elif defect == "overflow":  # finite, but f(x0) overflows: phi_eps(x0) = inf
        shift = data.draw(st.sampled_from([1e160, 1e200, -1e300] if dtype == torch.float64 else [1e20, -3e38]))
        args["x0"] = x0 + shift
    elif defect == "rank":
        shape = data.draw(st.sampled_from([(), (B,), (B, H * W), (B, H, W), (B, 1, 1, H, W)]))
        args["x0"] = rand_tensor(shape, x0.dtype, seed)
    elif defect == "spatial shape":
        c, dh, dw = data.draw(st.tuples(st.integers(1, 2), st.integers(-1, 2), st.integers(-1, 2))
                              .filter(lambda t: t != (1, 0, 0)))
        args["x0"] = rand_tensor((B, c, H + dh, W + dw), x0.dtype, seed)
    elif defect == "batch":
        args["x0"] = rand_tensor((B + data.draw(st.integers(1, 3)), *x0.shape[1:]), x0.dtype, seed)
    elif defect == "empty batch":
        args["x0"] = x0[:0]
    elif defect == "dtype: half/int/bool":
        args["x0"] = to_dtype(x0, data.draw(st.sampled_from(BAD_REAL_DTYPES + BAD_COMPLEX_DTYPES)))
        exc = TypeError
    elif defect == "float32 vs float64":
        other = {torch.float32: torch.float64, torch.float64: torch.float32,
                 torch.complex64: torch.complex128, torch.complex128: torch.complex64}[x0.dtype]
        args["x0"], exc = x0.to(other), TypeError
    elif defect == "real vs complex":
        args["x0"] = x0.real.contiguous() if x0.is_complex() else x0.to(
            torch.complex64 if dtype == torch.float32 else torch.complex128)
        exc = TypeError
    elif defect == "not a tensor":
        args["x0"] = data.draw(st.sampled_from([x0.tolist(), x0.numpy(), None, 0.5, "x0"]))
        exc = TypeError
    elif defect == "not a problem":
        args["problem"] = data.draw(st.sampled_from([problem.fidelity, None, "problem", problem.features]))
        exc, names = TypeError, ("problem",)
    elif defect == "callback":
        args["callback"] = data.draw(st.sampled_from([0, "print", [callback], 1.5]))
        exc, names = TypeError, ("callback",)
    elif defect == "progress":
        args["progress"] = data.draw(st.sampled_from([None, "yes", 1, 0.0, [True]]))
        exc, names = TypeError, ("progress",)
    elif defect == "weight length":
        n = data.draw(st.integers(1, 4).filter(lambda n: n != B))
        args["problem"] = lo.Problem(problem.fidelity, problem.features, torch.full((n,), 0.1, dtype=dtype))
        names = ("weight",)
    elif defect == "feature dtype":
        other = torch.float32 if dtype == torch.float64 else torch.float64
        conv = nn.Conv2d(1, 2, 3, padding=1, bias=False).to(other)
        args["problem"] = lo.Problem(problem.fidelity, conv, 0.1)
        exc, names = TypeError, ("feature",)
    elif defect == "feature output":
        args["problem"] = lo.Problem(problem.fidelity, _Broken(data.draw(st.sampled_from(["batch", "rank"]))), 0.1)
        names = ("feature",)
    else:  # the feature map returns NaN or Inf at x0
        v = data.draw(st.sampled_from([math.nan, math.inf]))
        args["problem"] = lo.Problem(problem.fidelity, _Broken("nonfinite", v), 0.1)
    with refused(exc, *names):
        solver.run(**args)
    assert calls == []  # refused before any iteration
