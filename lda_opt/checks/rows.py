"""The rows every algorithm shares, labelled by its :class:`~lda_opt.algorithms.theory.Labels`:
descent, the declared sufficient-decrease inequalities, the smoothing sandwich, the reduction
rule and trace continuity, the monotone quantity, the level set, termination and the
certificate.  Each function takes the :class:`~lda_opt.checks.engine.Sample` being checked."""

from __future__ import annotations

import math

from .. import bounds
from ..algorithms.theory import Row

__all__ = ["check_row", "decrease", "level_set", "reduction", "sandwich", "termination"]


def check_row(s, row: Row, desc: bool) -> None:
    """Every check of trace row ``row.k``; ``desc``: descent is guaranteed there."""
    if desc:
        s.ck.leq("descent", "phi_eps(x_{k+1}) <= phi_eps(x_k)", s.labels.descent, row.k, s.b,
                 row.phi_eps, row.phi_eps_prev)
    decrease(s, row)
    sandwich(s, row)
    reduced = reduction(s, row)
    continuity(s, row, reduced)


def decrease(s, row: Row) -> None:
    """The solver's sufficient-decrease inequalities of the branch taken."""
    for ineq in s.theory.decrease:
        if row.branch not in ineq.branches or (ineq.uses_constants and s.c is None):
            continue
        lhs, rhs = ineq.sides(row)
        scale = None if ineq.scale is None else ineq.scale(row)
        s.ck.leq("sufficient-decrease", ineq.text, ineq.equation, row.k, s.b, lhs, rhs, scale,
                 s.cert if ineq.uses_constants else True)


def sandwich(s, row: Row) -> None:
    """``phi_eps <= phi <= phi_eps + gap(eps_k)`` at ``x_{k+1}``."""
    ck, k, b, eq = s.ck, row.k, s.b, s.labels.sandwich
    pe, phi, gap_k = row.phi_eps, row.phi, s.gap(row.eps)
    ck.leq("smoothing-sandwich", "phi_eps(x_{k+1}) <= phi(x_{k+1})", eq, k, b, pe, phi)
    ck.leq("smoothing-sandwich", "phi(x_{k+1}) <= phi_eps(x_{k+1}) + gap(eps_k)", eq, k, b,
           phi, pe + gap_k, max(abs(phi), abs(pe) + gap_k))


def reduction(s, row: Row) -> bool:
    """``eps_{k+1} = gamma eps_k`` iff ``||grad phi_eps(x_{k+1})|| < sigma gamma eps_k`` (a
    sample that did not move keeps ``eps``).  Returns whether ``eps`` was reduced."""
    ck, k, b, eq, rr = s.ck, row.k, s.b, s.labels.reduction, "reduction-rule"
    eps, en, gn = row.eps, row.eps_next, row.grad_norm
    thr = s.sigma * s.gamma * eps
    reduced = en < eps
    if row.branch >= 0 and math.isfinite(gn):
        if reduced:
            ck.leq(rr, "reduced only if ||grad phi_eps(x_{k+1})|| < sigma gamma eps_k", eq, k, b,
                   gn, thr)
            ck.eq(rr, "eps_{k+1} = gamma eps_k", eq, k, b, en, s.gamma * eps, eps)
        else:
            ck.leq(rr, "not reduced only if ||grad phi_eps(x_{k+1})|| >= sigma gamma eps_k", eq,
                   k, b, thr, gn)
            ck.eq(rr, "eps_{k+1} = eps_k", eq, k, b, en, eps, eps)
    else:
        ck.eq(rr, "no move (or non-finite step): eps_{k+1} = eps_k", eq, k, b, en, eps, eps)
    return reduced


def continuity(s, row: Row, reduced: bool) -> None:
    """Row ``k+1`` continues row ``k`` (its ``eps`` and ``phi_eps_prev``), and across a
    reduction the sandwich at the new level and the monotone quantity
    ``phi_{eps_{k+1}}(x_{k+1}) + gap(eps_{k+1}) <= phi_{eps_k}(x_{k+1}) + gap(eps_k)`` (the
    left side is the next row's ``phi_eps_prev``, or the final ``phi_eps`` after the last row)."""
    ck, k, b, r = s.ck, row.k, s.b, s.r
    eps, en, pe, phi = row.eps, row.eps_next, row.phi_eps, row.phi
    if k + 1 < s.K:
        ck.eq("reduction-rule", "eps of row k+1 = eps_next of row k", "trace continuity", k, b,
              r["eps"][k + 1], en, eps)
        nxt = r["phi_eps_prev"][k + 1]
    else:
        nxt = s.final
    if nxt is None:
        return
    if not reduced:
        ck.eq("monotone-quantity", "phi_eps(x_{k+1}) recorded twice (row k+1's phi_eps_prev) agrees",
              "trace continuity", k, b, nxt, pe)
        return
    eq, gap_k, gap_n = s.labels.sandwich, s.gap(eps), s.gap(en)
    ck.leq("smoothing-sandwich", "phi_{eps_{k+1}}(x_{k+1}) <= phi(x_{k+1})", eq, k, b, nxt, phi)
    ck.leq("smoothing-sandwich", "phi(x_{k+1}) <= phi_{eps_{k+1}}(x_{k+1}) + gap(eps_{k+1})", eq,
           k, b, phi, nxt + gap_n, max(abs(phi), abs(nxt) + gap_n))
    ck.leq("monotone-quantity",
           "phi_{eps_{k+1}}(x_{k+1}) + gap(eps_{k+1}) <= phi_{eps_k}(x_{k+1}) + gap(eps_k)",
           s.labels.monotone, k, b, nxt + gap_n, pe + gap_k, max(abs(nxt), abs(pe)) + gap_k)


def level_set(s, monotone_all: bool) -> None:
    """``phi(x_{k+1}) <= phi_{eps0}(x0) + gap(eps0)`` (needs descent on every row)."""
    if not monotone_all:
        return
    r = s.r
    Q0 = r["phi_eps_prev"][0] + s.gap(r["eps"][0])
    for k in range(s.K):
        phi = r["phi"][k]
        s.ck.leq("monotone-quantity", "phi(x_{k+1}) <= phi_eps0(x_0) + gap(eps_0)",
                 "LDA Thm 3.6 / ELDA (4.30) / meta-LDA (A23)", k, s.b, phi, Q0,
                 max(abs(phi), abs(Q0)))


def termination(s) -> None:
    """The stopping rule on every row, ``max_iter``, the stop reason and, for a converged
    sample, :func:`certificate`."""
    r, ck, b, K, eq = s.r, s.ck, s.b, s.K, s.labels.termination
    for k in range(K - 1 if s.reason in (None, "converged") else K):
        # sigma eps_{k+1} >= eps_tol: otherwise the sample must have stopped here
        ck.leq("termination", "sigma eps_{k+1} >= eps_tol before the last iteration", eq, k, b,
               s.eps_tol, s.sigma * r["eps_next"][k])
    max_iter = float(s.solver.max_iter)
    ck.leq("termination", "iterations <= max_iter", "Solver.max_iter", K - 1, b, float(K),
           max_iter, 0.0)
    if s.reason == "max_iter":
        ck.eq("termination", "reason max_iter: iterations = max_iter", "Solver.max_iter", K - 1, b,
              float(K), max_iter, 0.0)
    elif s.reason == "linesearch_cap":
        ck.eq("termination", "reason linesearch_cap: the last search hit its cap",
              "Solver.max_linesearch", K - 1, b, r["capped"][K - 1], 1.0, 0.0)
    elif s.reason == "converged":
        certificate(s)


def certificate(s) -> None:
    """A converged sample's last row: ``||grad phi_eps|| < sigma gamma eps``, ``eps_next =
    gamma eps``, ``sigma eps_next < eps_tol``, and exactly ``num_reductions`` reductions."""
    r, ck, b, eqc = s.r, s.ck, s.b, s.labels.certificate
    k = s.K - 1
    eps, en, gn = r["eps"][k], r["eps_next"][k], r["grad_norm"][k]
    ck.leq("certificate", "||grad phi_eps(x_K)|| < sigma gamma eps", eqc, k, b, gn,
           s.sigma * s.gamma * eps)
    ck.eq("certificate", "eps_next = gamma eps at the last iteration", eqc, k, b, en,
          s.gamma * eps, eps)
    ck.leq("certificate", "sigma eps_next < eps_tol", eqc, k, b, s.sigma * en, s.eps_tol)
    n_red = sum(1 for e, n in zip(r["eps"], r["eps_next"]) if n < e)
    ell = bounds.num_reductions(r["eps"][0], s.eps_tol, s.sigma, s.gamma)
    ck.eq("certificate", "number of reductions = num_reductions(eps0, eps_tol, sigma, gamma)",
          "theory/README.md (counting)", k, b, float(n_red), float(ell), 0.0)
