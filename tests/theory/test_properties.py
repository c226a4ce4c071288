"""Hypothesis properties of LDA, MetaLDA and ELDA on random problems (float64).

Each example draws a random problem: a random linear operator (identity, a dense Gaussian
sensing matrix, or MRI ``P F`` with a random Bernoulli mask), a random feature map (TV,
identity, or a small smoothed-ReLU ``FeatureCNN`` with random weights, complex for MRI),
random data, ``x0``, ``eps0``, ``gamma``, ``sigma``, ``kappa`` and step sizes.  For each
algorithm (with its own smoothing: Huber for LDA and ELDA, Sqrt for MetaLDA):

* a run produces no checker violations (``lda_opt.check`` with certified constants);
* the smoothing sandwich ``phi_eps <= phi <= phi_eps + gap(eps)`` and the monotonicity of
  ``phi_eps + gap(eps)`` in ``eps`` hold (LDA (6), Lemma 3.4; meta-LDA (5), Lemma A4 corrected);
* Lemma 3.2 / A2 holds on random pairs, ``||grad (kappa r_eps)(x1) - grad (kappa r_eps)(x2)||
  <= kappa (sqrt(m) L_g + M^2/eps) ||x1 - x2||`` (and ``L_eps`` for ``grad phi_eps``), with the
  certified constants of ``lda_opt.bounds`` (also the paper's looser A2 constant for Sqrt);
* the solver's gradient (one vector-Jacobian product with the dual maximizer, LDA eq. 10) is
  correct: it equals autograd of the smoothed objective, and central differences agree with
  it within the certified Taylor remainder ``L_eps h ||d||^2 / 2``.

Profiles (tests/theory/conftest.py): ``ci`` (default, 100 examples per property) and, for the
``*_thorough`` copies marked ``slow``, ``thorough`` (1000 examples; 200 for the long runs of
``test_long_run_has_no_checker_violations_thorough``).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lda_opt as lo
from lda_opt import bounds as B
from lda_opt import checks
from lda_opt.algorithms.base import Counter, Oracle
from lda_opt.nets import FeatureCNN, xavier_init_

DT = torch.float64
CDT = torch.complex128
PAPER = [lo.LDA, lo.MetaLDA, lo.ELDA]
EPS64 = torch.finfo(DT).eps

OPERATORS = ("identity", "matrix", "mri")
FEATURES = ("fd", "identity", "cnn")


@st.composite
def problems(draw):
    """A random problem specification (built by :func:`build`; printed on failure)."""
    return {
        "seed": draw(st.integers(0, 2**31 - 1)),
        "op": draw(st.sampled_from(OPERATORS)),
        "feat": draw(st.sampled_from(FEATURES)),
        "H": draw(st.integers(3, 5)),
        "W": draw(st.integers(3, 5)),
        "kappa": draw(st.floats(0.01, 1.0)),
        "width": draw(st.integers(1, 3)),
        "depth": draw(st.integers(1, 2)),
        "delta": draw(st.floats(0.02, 0.5)),
        "scale": draw(st.floats(0.3, 2.0)),  # operator scale (L_f = ||A||^2 varies)
        "noise": draw(st.floats(0.0, 0.3)),
        "x0": draw(st.sampled_from(("adjoint", "random", "zero"))),
    }


def build(spec: dict):
    """``(problem, x0)`` of a specification (float64, or complex128 for MRI)."""
    gen = torch.Generator().manual_seed(spec["seed"])
    H, W = spec["H"], spec["W"]
    n = H * W
    cplx = spec["op"] == "mri"
    dt = CDT if cplx else DT

    def randn(*shape):
        t = torch.randn(*shape, generator=gen, dtype=DT)
        return (
            torch.complex(t, torch.randn(*shape, generator=gen, dtype=DT)) / math.sqrt(2)
            if cplx
            else t
        )

    if spec["op"] == "identity":
        A = lo.operators.Identity()
    elif spec["op"] == "matrix":
        rows = max(1, n // 2)
        Phi = torch.randn(rows, n, generator=gen, dtype=DT) * spec["scale"] / math.sqrt(n)
        A = lo.operators.Matrix(Phi, image_shape=(1, H, W))
    else:
        mask = (torch.rand(H, W, generator=gen, dtype=DT) < 0.5).to(DT)
        mask[0, 0] = 1.0
        A = lo.operators.MRI(mask)
    truth = torch.zeros(1, 1, H, W, dtype=dt)
    truth[..., H // 3 : H - 1, W // 4 : W - 1] = 1.0
    truth = truth + 0.3 * randn(1, 1, H, W)
    y = A(truth)
    y = y + spec["noise"] * (randn(*y.shape) if not cplx else A(randn(1, 1, H, W)))
    if spec["feat"] == "fd":
        q = lo.features.FiniteDifference()
    elif spec["feat"] == "identity":
        q = lo.features.Identity()
    else:
        q = FeatureCNN(
            1, width=spec["width"], depth=spec["depth"], complex=cplx, delta=spec["delta"]
        )
        xavier_init_(q, gain=1.5, generator=gen)
        q = q.to(DT)
    p = lo.Problem(lo.LeastSquares(A, y), q, spec["kappa"])
    if spec["x0"] == "adjoint":
        x0 = A.H(y).to(dt)
    elif spec["x0"] == "random":
        x0 = randn(1, 1, H, W)
    else:
        x0 = torch.zeros(1, 1, H, W, dtype=dt)
    return p, x0


@st.composite
def solver_params(draw, cls, long: bool = False):
    """Random eps0, gamma, sigma, eps_tol, max_iter and steps: short runs (2-8 iterations, a
    few reductions at most) or, with ``long``, 30-150 iterations down to eps_tol as small as
    sigma eps0 / 300 (many segments; reaches the floating-point regime of theory/README.md)."""
    eps0 = 10 ** draw(st.floats(-2.5, -0.3))
    sigma = 10 ** draw(st.floats(-0.5, 2.0))
    kw = {
        "eps0": eps0,
        "gamma": draw(st.floats(0.3, 0.95)),
        "sigma": sigma,
        "eps_tol": sigma
        * eps0
        * (10 ** draw(st.floats(-2.5, -0.1)) if long else draw(st.floats(0.2, 0.95))),
        "max_iter": draw(st.integers(30, 150) if long else st.integers(2, 8)),
    }
    if cls is lo.LDA:
        kw.update(
            alpha=10 ** draw(st.floats(-1.5, 0.5)),
            c=draw(st.floats(0.05, 0.5)),
            shrink=draw(st.floats(0.3, 0.8)),
        )
    elif cls is lo.MetaLDA:
        kw.update(
            alpha=10 ** draw(st.floats(-2, 0.3)),
            tau=10 ** draw(st.floats(-2, 0.3)),
            a=10 ** draw(st.floats(0.5, 5)),
            rho=draw(st.floats(0.3, 0.9)),
        )
    else:
        kw.update(
            alpha=10 ** draw(st.floats(-2, 0.3)),
            gamma_u=10 ** draw(st.floats(-2, 0.3)),
            alpha_bar=10 ** draw(st.floats(-2, 0.5)),
            eta1=10 ** draw(st.floats(-5, 0)),
            eta2=10 ** draw(st.floats(-5, 0)),
            eta3=10 ** draw(st.floats(-5, -1)),
            rho=draw(st.floats(0.3, 0.9)),
        )
    return kw


def _oracle_grad(problem, smoothing, x, eps, reg_only=False):
    """The solvers' gradient of ``phi_eps`` (or of ``kappa r_eps``) at ``x``: one forward and
    one vector-Jacobian product (lda_opt.algorithms.base.Oracle)."""
    oracle = Oracle(problem, smoothing)
    e = torch.full((x.shape[0],), eps, dtype=DT)
    cnt = Counter(x.shape[0])
    pt = oracle.evaluate(x, e, cnt)
    need = torch.ones(x.shape[0], dtype=torch.bool)
    g = (oracle.grad_reg if reg_only else oracle.gradient)(pt, e, need, cnt, retain=False)
    return g, pt.phi_eps


def _noise(gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise shaped like ``like`` (complex: independent Re and Im parts)."""
    t = torch.randn(like.shape, generator=gen, dtype=DT)
    if like.is_complex():
        t = torch.complex(t, torch.randn(like.shape, generator=gen, dtype=DT))
    return t


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t))


def _inner(a: torch.Tensor, b: torch.Tensor) -> float:
    """Real inner product of the (Re, Im) embeddings."""
    return float((torch.conj(a) * b).real.sum()) if a.is_complex() else float((a * b).sum())


def _L_eps(sm, c: dict, eps: float, kappa: float) -> float:
    """Certified L_eps: LDA Lemma 3.2 (Huber) or the sharp meta-LDA Lemma A2 constant (Sqrt)."""
    if sm.name == "sqrt":
        return B.lipschitz_sqrt(c["L_f"], c["L_g"], c["M"], c["m"], eps, kappa, sharp=True)
    return B.lipschitz_huber(c["L_f"], c["L_g"], c["M"], c["m"], eps, kappa)


def _smoothing(cls):
    return lo.Sqrt() if cls is lo.MetaLDA else lo.Huber()


# ------------------------------------------------------------------------------------------
# the properties (each is also registered as a slow `thorough` copy at the end of the file)
# ------------------------------------------------------------------------------------------


def _run_is_clean(cls, spec, data):
    """theory/*.md, every entry checked on traces: a run has no checker violations."""
    _check_run(cls, spec, data, long=False)


def _check_run(cls, spec, data, long: bool) -> None:
    p, x0 = build(spec)
    solver = cls(**data.draw(solver_params(cls, long), label="solver"))
    res = solver.run(p, x0)
    assert res.reason[0] != "nonfinite"
    rep = lo.check(res, p, solver)
    assert rep.ok, rep.summary()
    K = int(res.iterations[0])
    assert rep.counts["descent"] == K and rep.counts["linesearch-bound"] >= K
    assert rep.counts["segment-bound"] >= 1


def _sandwich_holds(cls, spec, log_eps, shrink, t):
    """LDA (6) / meta-LDA (5) corrected: phi_eps <= phi <= phi_eps + gap(eps) at random points,
    and LDA Lemma 3.4 / ELDA (4.30) / meta-LDA Lemma A4 corrected: phi_eps + gap(eps) is
    non-decreasing in eps."""
    p, x0 = build(spec)
    sm = _smoothing(cls)
    x = x0 + t * _noise(torch.Generator().manual_seed(spec["seed"] + 1), x0)
    m = checks.estimate_constants(p)["m"]
    eps, eps2 = 10**log_eps, shrink * 10**log_eps
    phi = float(p.phi(x)[0])
    pe, pe2 = float(p.phi_eps(x, eps, sm)[0]), float(p.phi_eps(x, eps2, sm)[0])
    gap, gap2 = (B.smoothing_gap(sm.name, m, e, spec["kappa"]) for e in (eps, eps2))
    tol = 64 * EPS64 * (abs(phi) + gap)  # rounding of sums of m group norms
    assert pe <= phi + tol
    assert phi <= pe + gap + tol
    assert pe2 + gap2 <= pe + gap + tol


def _lipschitz_on_pairs(cls, spec, log_eps, log_dist):
    """LDA Lemma 3.2 (Huber) / meta-LDA Lemma A2 (Sqrt; sharp and paper constants) with the
    certified M, L_g of lda_opt.bounds, on a random pair; and L_eps for grad phi_eps."""
    p, x0 = build(spec)
    sm = _smoothing(cls)
    gen = torch.Generator().manual_seed(spec["seed"] + 2)
    x1 = x0 + 0.3 * _noise(gen, x0)
    x2 = x1 + 10**log_dist * _noise(gen, x0)
    eps = 10**log_eps
    c = checks.estimate_constants(p)
    assert all(c["certified"].values())
    kap, m = spec["kappa"], c["m"]
    dx = _norm(x1 - x2)
    gr1, _ = _oracle_grad(p, sm, x1, eps, reg_only=True)
    gr2, _ = _oracle_grad(p, sm, x2, eps, reg_only=True)
    g1, _ = _oracle_grad(p, sm, x1, eps)
    g2, _ = _oracle_grad(p, sm, x2, eps)
    L_r = kap * (math.sqrt(m) * c["L_g"] + c["M"] ** 2 / eps)  # Lemma 3.2 / sharp A2, times kappa
    L_eps = _L_eps(sm, c, eps, kap)
    assert L_eps == pytest.approx(c["L_f"] + L_r, rel=1e-14)
    slack = 1e-12  # rounding of the two gradients (a few hundred float64 operations each)
    assert _norm(gr1 - gr2) <= L_r * dx + slack * (_norm(gr1) + _norm(gr2))
    assert _norm(g1 - g2) <= L_eps * dx + slack * (_norm(g1) + _norm(g2))
    if sm.name == "sqrt":  # the paper's A2 constant is larger still
        assert L_eps <= B.lipschitz_sqrt(c["L_f"], c["L_g"], c["M"], m, eps, kap) * (1 + 1e-15)


def _gradient_is_correct(cls, spec, log_eps, log_h):
    """LDA eq. (10) / meta-LDA (A2): the solvers' gradient (dual maximizer + one VJP) equals
    autograd of the smoothed objective, and central differences along a random unit direction
    d agree with <grad, d> within the Taylor remainder L_eps h / 2 (plus rounding)."""
    p, x0 = build(spec)
    sm = _smoothing(cls)
    gen = torch.Generator().manual_seed(spec["seed"] + 3)
    x = x0 + 0.3 * _noise(gen, x0)
    eps = 10**log_eps
    g, pe = _oracle_grad(p, sm, x, eps)
    # independent path: autograd through f + kappa * r_eps
    xa = x.detach().clone().requires_grad_(True)
    val = p.fidelity.value(xa) + spec["kappa"] * sm.value(p.features(xa), eps)
    (ga,) = torch.autograd.grad(val.sum(), xa)
    assert float(val.detach()[0]) == pytest.approx(float(pe[0]), rel=1e-13, abs=1e-300)
    assert _norm(g - ga) <= 1e-10 * (_norm(ga) + 1e-300)
    # central differences with the certified Lipschitz constant of grad phi_eps
    c = checks.estimate_constants(p)
    L_eps = _L_eps(sm, c, eps, spec["kappa"])
    d = _noise(gen, x)
    d = d / _norm(d)
    h = 10**log_h
    fp, fm = (float(p.phi_eps(x + s * h * d, eps, sm)[0]) for s in (1, -1))
    cd = (fp - fm) / (2 * h)
    rounding = 64 * EPS64 * (abs(fp) + abs(fm)) / (2 * h)
    assert abs(cd - _inner(g, d)) <= L_eps * h / 2 + rounding


# ------------------------------------------------------------------------------------------
# registration: the ci tests (loaded profile) and the slow thorough copies
# ------------------------------------------------------------------------------------------

_ALGS = pytest.mark.parametrize("cls", PAPER, ids=lambda c: c.name)
_THOROUGH = settings(settings.get_profile("thorough"))

_STRATS = {
    "run": {"spec": problems(), "data": st.data()},
    "sandwich": {
        "spec": problems(),
        "log_eps": st.floats(-4, 0),
        "shrink": st.floats(0.05, 1.0),
        "t": st.floats(0.0, 2.0),
    },
    "lipschitz": {"spec": problems(), "log_eps": st.floats(-3, 0), "log_dist": st.floats(-6, 0)},
    "gradient": {"spec": problems(), "log_eps": st.floats(-3, 0), "log_h": st.floats(-7, -4)},
}
_BODIES = {
    "run": _run_is_clean,
    "sandwich": _sandwich_holds,
    "lipschitz": _lipschitz_on_pairs,
    "gradient": _gradient_is_correct,
}


def _register(name: str):
    body, strats = _BODIES[name], _STRATS[name]
    ci = _ALGS(given(**strats)(body))
    thorough = pytest.mark.slow(_ALGS(_THOROUGH(given(**strats)(body))))
    return ci, thorough


test_run_has_no_checker_violations, test_run_has_no_checker_violations_thorough = _register("run")
test_smoothing_sandwich, test_smoothing_sandwich_thorough = _register("sandwich")
test_lipschitz_random_pairs, test_lipschitz_random_pairs_thorough = _register("lipschitz")
test_gradients_are_correct, test_gradients_are_correct_thorough = _register("gradient")


def _long_run_is_clean(cls, spec, data):
    """As the run property, with 30-150 iterations and tight tolerances (thorough only)."""
    _check_run(cls, spec, data, long=True)


test_long_run_has_no_checker_violations_thorough = pytest.mark.slow(
    _ALGS(
        settings(settings.get_profile("thorough"), max_examples=200)(
            given(**_STRATS["run"])(_long_run_is_clean)
        )
    )
)
