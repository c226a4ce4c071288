"""Shared pieces of the fuzz suite (imported as ``_fuzz``): bad-value strategies, the
refusal assertion and the case counter.

Every generated case ends in :func:`refused` (a library call: the *exact* exception type,
a one-line message naming the parameter) or the CLI check of ``test_fuzz_cli.py`` (exit
status 2, one stderr line naming the option, no output folder); both call :func:`count`
once their assertions hold, so the count reported by ``tests/fuzz/conftest.py`` at the end
of the session is the number of cases that were run and checked.  :func:`case` tags a case
with its class of bad input (a hypothesis ``event``, shown by
``--hypothesis-show-statistics``).
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import event, settings
from hypothesis import strategies as st

#: generated cases run in this process, per test node id
CASES: Counter = Counter()


def fuzz(classes: int = 1):
    """The settings of a fuzz property parametrized over ``classes`` classes of bad input:
    the profile's ``max_examples`` shared among them (at least 4 each), so that every class
    is exercised in every profile and a property runs about ``max_examples`` cases in all
    (``ci``: 100, ``thorough``: 1000; see ``tests/conftest.py``)."""
    return settings(max_examples=max(4, math.ceil(settings.default.max_examples / classes)))


def case(kind: str) -> None:
    """Tag the running case with its class of bad input ``kind`` (a hypothesis event)."""
    event(kind)


def count() -> None:
    """Count one case of the running test whose assertions all held."""
    CASES[os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]] += 1


@contextmanager
def refused(exc: type[Exception], *names: str):
    """Assert that the block raises exactly ``exc`` (not a subclass, not another error) with
    a message naming one of ``names``."""
    with pytest.raises(Exception) as info:
        yield info
    err = info.value
    assert type(err) is exc, f"expected {exc.__name__}, got {type(err).__name__}: {err}"
    msg = str(err)
    assert any(n in msg for n in names), f"{type(err).__name__} message {msg!r} names none of {names}"
    assert "\n" not in msg.strip(), f"multi-line message {msg!r}"
    count()


# ---------------------------------------------------------------------------------------
# bad scalar values
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Range:
    """A documented valid range: a real in an interval, or an integer ``>= lo``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = True
    hi_open: bool = True
    integer: bool = False
    #: ``None`` is a valid value too (e.g. LDA's ``tau``)
    optional: bool = False


POSITIVE = Range(0.0)
UNIT_OPEN = Range(0.0, 1.0)
COUNT = Range(1, integer=True)

NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])
WRONG_KIND = st.one_of(
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.complex_numbers(allow_nan=False, allow_infinity=False, min_magnitude=1e-3, max_magnitude=10)
    .filter(lambda z: z.imag != 0),
    st.lists(st.floats(0.1, 1.0), min_size=1, max_size=3),
    st.just({"value": 0.5}),
    st.just(object()),
    st.just(torch.tensor([0.5, 0.5])),
    st.just(torch.tensor(0.5 + 0.5j)),
    st.just(np.array([0.5, 0.25])),
)


def out_of_range(r: Range) -> st.SearchStrategy:
    """Numbers of the right kind outside ``r`` (including its open ends)."""
    parts = []
    if r.integer:
        if r.lo is not None:
            parts.append(st.integers(max_value=int(r.lo) - 1, min_value=int(r.lo) - 10**12))
        return st.one_of(parts)
    if r.lo is not None:
        below = st.floats(max_value=r.lo, allow_nan=False, allow_infinity=False, min_value=-1e300)
        if not r.lo_open:
            below = below.filter(lambda v: v < r.lo)
        parts.append(below)
        parts.append(st.just(r.lo) if r.lo_open else st.just(r.lo - 1.0))
    if r.hi is not None:
        above = st.floats(min_value=r.hi, allow_nan=False, allow_infinity=False, max_value=1e300)
        if not r.hi_open:
            above = above.filter(lambda v: v > r.hi)
        parts.append(above)
        parts.append(st.just(r.hi) if r.hi_open else st.just(r.hi + 1.0))
    return st.one_of(parts)


def bad_value(r: Range) -> st.SearchStrategy:
    """``(value, expected exception type, class of bad input)`` for a parameter of range ``r``:
    out of range or non-finite -> ValueError; the wrong kind (bool, None, str, complex,
    sequence, ...) -> TypeError; a float for an integer -> TypeError."""
    values = [
        out_of_range(r).map(lambda v: (v, ValueError, "out of range")),
        out_of_range(r).map(lambda v: (np.float64(v) if not r.integer else np.int64(v),
                                       ValueError, "out of range (numpy)")),
        WRONG_KIND.filter(lambda v: not (r.optional and v is None)).map(lambda v: (v, TypeError, "wrong kind")),
    ]
    if r.integer:
        values.append(st.floats(allow_nan=True, allow_infinity=True)
                      .map(lambda v: (v, TypeError, "float for an integer")))
    else:
        values.append(NONFINITE.map(lambda v: (v, ValueError, "NaN/Inf")))
        values.append(NONFINITE.map(lambda v: (torch.tensor(v), ValueError, "NaN/Inf tensor")))
    return st.one_of(values)


#: real dtypes a problem refuses
BAD_REAL_DTYPES = [torch.float16, torch.bfloat16, torch.int8, torch.int32, torch.int64,
                   torch.uint8, torch.bool]
BAD_COMPLEX_DTYPES = [torch.complex32]


def to_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype`` (a complex ``t`` gives its real part to a real dtype, quietly)."""
    if t.is_complex() and not dtype.is_complex:
        t = t.real
    with warnings.catch_warnings():  # "ComplexHalf support is experimental"
        warnings.simplefilter("ignore", UserWarning)
        return t.to(dtype)


def tensor(shape, dtype=torch.float64, seed=0) -> torch.Tensor:
    """A seeded random tensor (complex for a complex dtype)."""
    g = torch.Generator().manual_seed(seed)
    if dtype.is_complex:
        real = torch.complex64 if dtype == torch.complex64 else torch.complex128
        return torch.randn(shape, generator=g, dtype=real)
    return torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)


def poison(t: torch.Tensor, seed: int, value: float) -> torch.Tensor:
    """``t`` with one entry (chosen by ``seed``) set to ``value`` (NaN, Inf, ...)."""
    out = t.clone()
    flat = out.view(-1)
    i = seed % flat.numel()
    flat[i] = complex(value, 0) if out.is_complex() else value
    return out


# ---------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------
def snapshot(root) -> dict[str, bytes | None]:
    """Every path under ``root`` (hidden ones included) with its bytes (``None``: a folder)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = None if os.path.islink(p) else Path(p).read_bytes()
    return out


def cli(argv: list[str], timeout: int = 60) -> tuple[int, str, str, list]:
    """``lda_opt.cli.main(argv)`` in this process: ``(exit status, stdout, stderr, warnings)``.
    argparse's ``SystemExit`` gives its code; an alarm turns a hang into a failure.  The
    warnings are those a user would see: every category but those Python's default filters
    hide outside ``__main__`` (``ResourceWarning``, ``DeprecationWarning``, ...; third-party
    image readers leak a file handle and warn of deprecated plugins on a damaged file)."""
    import contextlib
    import io
    import signal

    from lda_opt.cli import main

    def hang(signum, frame):
        raise TimeoutError(f"lda-opt {' '.join(argv)} ran for more than {timeout} s")

    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(timeout)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            warnings.simplefilter("always")
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    hidden = (ResourceWarning, DeprecationWarning, PendingDeprecationWarning, ImportWarning)
    shown = [str(w.message) for w in caught if not issubclass(w.category, hidden)]
    return rc, out.getvalue(), err.getvalue(), shown


def cli_refused(argv: list[str], root, *names: str) -> str:
    """Assert that ``lda-opt ARGV`` is refused as bad input: exit status 2, exactly one line
    on stderr, ``lda-opt CMD: error: ...`` naming one of ``names``, nothing on stdout, no
    warning, and nothing under ``root`` created or changed (no output folder, no partial
    one, no NaN written anywhere).  Returns the error line."""
    cmd = argv[0]
    before = snapshot(root)
    cwd = os.getcwd()
    os.chdir(root)  # a relative path that slips through lands under root, and is seen there
    try:
        rc, out, err, caught = cli(argv)
    finally:
        os.chdir(cwd)
    lines = err.strip().splitlines()
    assert rc == 2, f"lda-opt {argv}: exit status {rc}, stderr {err[-2000:]!r}"
    assert len(lines) == 1, f"lda-opt {argv}: {len(lines)} stderr lines: {err[-2000:]!r}"
    line = lines[0]
    assert line.startswith(f"lda-opt {cmd}: error: "), line
    assert any(n in line for n in names), f"{line!r} names none of {names}"
    assert out == "", out
    assert not caught, f"warnings: {caught}"
    assert snapshot(root) == before, "the refused command changed files"
    count()
    return line
