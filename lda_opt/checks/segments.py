"""The constant-based checks: the constants rows, the solver's declared line-search bound
(:class:`~lda_opt.algorithms.theory.LineSearchBound`) on every row, and its segment and total
bounds (:class:`~lda_opt.algorithms.theory.BoundGroup`) on the eps-segments of the run."""

from __future__ import annotations

from ..algorithms.theory import BoundContext, BoundGroup, LineSearchBound, Segment

__all__ = ["check_bounds", "check_group", "linesearch_bounds", "segments", "start_values"]


def check_bounds(s) -> None:
    """Every constant-based check of the sample ``s`` (which has constants)."""
    th = s.theory
    if th.bounds is None:
        name = getattr(s.solver, "name", type(s.solver).__name__)
        s.ck.report.skip(th.no_bounds or
                         f"linesearch-bound, segment-bound, total-bound: {name} declares no bound")
        return
    phi_x0, phi_star = start_values(s)
    if th.linesearch is not None:
        linesearch_bounds(s, th.linesearch)
    c = s.c
    ctx = BoundContext(
        L_f=c["L_f"], M=c["M"], L_g=c["L_g"], m=s.m, kappa=s.kappa, phi_x0=phi_x0,
        phi_star=phi_star, eps0=s.r["eps"][0], sigma=s.sigma, gamma=s.gamma, eps_tol=s.eps_tol,
        L=s.L, gap=s.gap, segments=segments(s),
    )
    for group in th.bounds(ctx):
        if not check_group(s, group, ctx.segments):
            break


def start_values(s) -> tuple[float, float]:
    """``(phi_x0, phi_star)`` for the bounds, with their rows: a supplied ``phi_x0`` bounds
    the trace's ``phi_{eps0}(x0)``, and ``phi_star <= phi_{eps0}(x0) + gap(eps0)`` (A3).
    ``phi_x0`` below ``phi_star`` is possible (``phi_eps <= phi``); it is raised to
    ``phi_star``, which only loosens the bounds."""
    r, ck, b, c = s.r, s.ck, s.b, s.c
    phi_star = float(c.get("phi_star") if c.get("phi_star") is not None else 0.0)
    phi_x0_trace = r["phi_eps_prev"][0]
    phi_x0 = c.get("phi_x0")
    if isinstance(phi_x0, (list, tuple)):
        phi_x0 = phi_x0[b]
    if phi_x0 is None:
        phi_x0 = phi_x0_trace
    else:
        phi_x0 = float(phi_x0)
        ck.leq("constants", "phi_eps0(x_0) <= phi_x0 (supplied)", "constants", 0, b, phi_x0_trace,
               phi_x0)
    ck.leq("constants", "phi_star <= phi_eps0(x_0) + gap(eps_0)", "(A3): phi* <= min phi", 0, b,
           phi_star, phi_x0_trace + s.gap(r["eps"][0]))
    return max(phi_x0, phi_star), phi_star


def linesearch_bounds(s, ls: LineSearchBound) -> None:
    """Evaluations ``<= l_max``, the accepted step ``>=`` its lower bound, and no cap hit
    when ``max_linesearch >= l_max``, with the solver's ``ls.limits``.

    A row whose search cannot be resolved in floating point is *rounding-limited*: every
    acceptable trial ``s <= T`` (``T`` the threshold step of the rule) satisfies the rule
    with margin at most ``max_s s g^2 (1 - s/T) = T g^2/4`` (``g = ||grad phi_eps(x_k)||``);
    when that is below the rounding tolerance of ``phi_eps`` the computed test may fail
    at every such step (the search then ends where ``v == x_k`` in floating point).  Its
    failures go to :attr:`Report.rounding`, not to the violations."""
    r, ck, b = s.r, s.ck, s.b
    cap = float(s.solver.max_linesearch)
    prev_step = None
    for k in range(s.K):
        eps = r["eps"][k]
        T, lmax, min_step = ls.limits(eps, s.L(eps), prev_step)
        br = int(r["branch"][k])
        prev_step = r["step"][k] if br >= 0 else prev_step
        gp = r["grad_norm_prev"][k]
        phi_scale = max(abs(r["phi_eps_prev"][k]), abs(r["phi_eps"][k]))
        limited = not (0.25 * T * gp * gp > ck.rtol * phi_scale)
        ck.leq("linesearch-bound", "phi_eps(v) evaluations <= l_max", ls.equation, k, b,
               r["linesearch"][k], float(lmax), 0.0, s.cert, limited)
        if r["capped"][k]:
            ck.leq("linesearch-bound", "a search hits its cap only if max_linesearch < l_max",
                   ls.equation, k, b, cap, float(lmax) - 1.0, 0.0, s.cert, limited)
        if br in ls.step_branches:
            ck.leq("linesearch-bound", "accepted step >= its lower bound", ls.step_equation, k, b,
                   min_step, r["step"][k], None, s.cert, limited)


def segments(s) -> tuple[Segment, ...]:
    """The eps-segments of the sample (``k_0 = -1``; an unfinished last segment counts its
    iterations so far, which the same bound limits)."""
    r = s.r
    bounds_, start = [], 0
    for k, (e, en) in enumerate(zip(r["eps"], r["eps_next"])):
        if en < e:
            bounds_.append((start, k, True))
            start = k + 1
    if start < s.K:
        bounds_.append((start, s.K - 1, False))
    return tuple(
        Segment(l, first, last, done, r["eps"][first], r["phi_eps_prev"][first])
        for l, (first, last, done) in enumerate(bounds_)
    )


def check_group(s, group: BoundGroup, segs: tuple[Segment, ...]) -> bool:
    """Each segment's length, the iterations up to the last reduction and, when converged,
    all iterations.  Returns False (and checks no total) when the segment bound did not
    apply to some segment (the reason goes to :attr:`Report.skipped`)."""
    ck, b, sb = s.ck, s.b, group.segment
    applied = True
    for seg in segs:
        reason = None if sb.applies is None else sb.applies(seg)
        if reason is not None:
            ck.report.skip(reason)
            applied = False
            continue
        ck.leq("segment-bound", f"segment {seg.index} length <= {sb.text}", sb.equation, seg.last,
               b, float(seg.length), sb.bound(seg), 0.0, s.cert)
    if not applied:
        return False
    done = tuple(seg for seg in segs if seg.finished)
    if done and group.total is not None:
        last = max(seg.last for seg in done)
        ck.leq("total-bound", group.total.text, group.total.equation, last, b, float(last + 1),
               group.total.bound(done), 0.0, s.cert)
    if group.closed is not None and s.reason == "converged":
        ck.leq("total-bound", group.closed.text, group.closed.equation, s.K - 1, b, float(s.K),
               group.closed.value, 0.0, s.cert)
    return True
