"""Fuzzing ``lda-opt check DIR``: the folder of a real ``lda-opt solve`` run, damaged.

Classes of bad input: DIR missing or a file; ``result.json`` or ``trace.csv`` missing or a
directory; either file empty, truncated, not UTF-8 or garbage; ``result.json`` not a JSON
object, a required key removed, or a value of the wrong kind or out of range (``m``,
``weight``, the solver's name and hyper-parameters, the smoothing, the stop reasons, the
batch size, the per-sample iteration counts and final values, the constants, the dtype);
``trace.csv`` with a column removed, a cell that is not a number, an unknown branch label,
a sample index out of range, a repeated row, rows removed, or an extra line; ``--out`` a file
or under a file.  Each case: exit status 2 and one stderr line ``lda-opt check: error: ...``
naming the file or the entry (``_fuzz.cli_refused``), with nothing written (no ``--out``
folder) and the run folder unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from _fuzz import POSITIVE, bad_value, case, cli, cli_refused, fuzz
from hypothesis import given
from hypothesis import strategies as st

from lda_opt.trace import ALL_FIELDS


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One real ``lda-opt solve`` run (TV denoising, 8 x 8, a few iterations), checked clean."""
    d = tmp_path_factory.mktemp("check_base")
    out = d / "run"
    rc, _, err, _ = cli(["solve", "--quiet", "--out", str(out), "--size", "8", "--eps-tol", "0.5",
                         "--max-iter", "20"])
    assert rc == 0, err
    assert cli(["check", str(out), "--quiet"])[0] == 0
    return str(out)


KEEP = object()  # a file left as the run wrote it
JSON_WRONG = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.lists(st.integers(0, 2), max_size=2),
                       st.just({}), st.sampled_from([math.nan, math.inf, -1.0, 0.0]))


def _without(d: dict, path: tuple[str, ...]) -> None:
    for k in path[:-1]:
        d = d[k]
    del d[path[-1]]


def _set(d: dict, path: tuple[str, ...], value) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


REQUIRED = [("solver",), ("problem",), ("reason",), ("solver", "name"), ("solver", "params"), ("problem", "m"),
            ("problem", "weight")]
SOLVER_RANGES = {"eps0": POSITIVE, "sigma": POSITIVE, "eps_tol": POSITIVE, "alpha": POSITIVE, "c": POSITIVE}

CHECK_DEFECTS = ["dir: missing", "dir: a file", "file: missing", "file: a directory", "file: empty",
                 "file: not UTF-8", "file: garbage", "result: truncated", "result: not an object",
                 "result: key removed", "result: m", "result: weight", "result: solver name",
                 "result: solver param", "result: solver unknown param", "result: smoothing", "result: reason",
                 "result: batch_size", "result: iterations", "result: phi_eps_final", "result: constants",
                 "result: dtype", "trace: truncated", "trace: column removed", "trace: not a number",
                 "trace: branch label", "trace: sample index", "trace: repeated row", "trace: rows removed",
                 "trace: extra line", "out: a file", "out: under a file"]


@pytest.mark.parametrize("defect", CHECK_DEFECTS)
@fuzz(len(CHECK_DEFECTS))
@given(st.data())
def test_check_refuses_damaged_runs(run_dir, defect, data):
    case(defect)
    with tempfile.TemporaryDirectory(prefix="lda-fuzz-") as d:
        run = os.path.join(d, "run")
        shutil.copytree(run_dir, run)
        rpath, tpath = os.path.join(run, "result.json"), os.path.join(run, "trace.csv")
        result = json.loads(Path(rpath).read_text(encoding="utf-8"))
        rows = list(csv.reader(io.StringIO(Path(tpath).read_text(encoding="utf-8"), newline="")))
        target, out, names = run, os.path.join(d, "report"), ("result.json",)
        new_result = new_trace = KEEP  # JSON-able value / list of CSV rows / raw bytes
        if defect == "dir: missing":
            target, names = os.path.join(d, "nope"), ("nope", "directory")
        elif defect == "dir: a file":
            target, names = rpath, ("directory",)
        elif defect.startswith("file: "):
            which = data.draw(st.sampled_from([rpath, tpath]))
            names = (os.path.basename(which),)
            if defect == "file: missing":
                os.remove(which)
            elif defect == "file: a directory":
                os.remove(which)
                os.mkdir(which)
            else:
                raw = {"file: empty": b"",
                       "file: not UTF-8": b"\xff\xfe" + data.draw(st.binary(max_size=20)),
                       "file: garbage": data.draw(st.sampled_from([b"\x00\x01\x02", b"<html>", b"PK\x03\x04"]))}[defect]
                with open(which, "wb") as fh:
                    fh.write(raw)
        elif defect == "result: truncated":
            text = Path(rpath).read_bytes()
            end = text.rindex(b"}")
            new_result = text[: data.draw(st.integers(0, end - 1))]
        elif defect == "result: not an object":
            new_result = data.draw(st.one_of(st.lists(st.integers(), max_size=2), st.integers(), st.text(max_size=3),
                                             st.none()))
        elif defect == "result: key removed":
            path = data.draw(st.sampled_from(REQUIRED))
            _without(result, path)
            new_result, names = result, (path[-1],)
        elif defect == "result: m":
            result["problem"]["m"] = data.draw(st.one_of(JSON_WRONG, st.integers(max_value=0), st.floats(1.5, 99.5)))
            new_result, names = result, ("m",)
        elif defect == "result: weight":
            result["problem"]["weight"] = data.draw(st.one_of(
                JSON_WRONG, st.floats(max_value=0.0, allow_nan=False), st.lists(st.floats(0.01, 1.0), min_size=2,
                                                                                 max_size=3))
                .filter(lambda v: not _one_positive(v)))  # [kappa] is a valid weight for one sample
            new_result, names = result, ("weight", "kappa")
        elif defect == "result: solver name":
            result["solver"]["name"] = data.draw(st.one_of(
                st.text(max_size=8).filter(lambda s: s not in ("lda", "meta-lda", "elda", "gd", "agd")),
                st.none(), st.integers()))
            new_result, names = result, ("solver name", "name")
        elif defect == "result: solver param":
            name = data.draw(st.sampled_from(sorted(SOLVER_RANGES)))
            value, _, _ = data.draw(bad_value(SOLVER_RANGES[name]).filter(lambda t: _jsonable(t[0])))
            result["solver"]["params"][name] = value
            new_result, names = result, (name,)
        elif defect == "result: solver unknown param":
            key = data.draw(st.from_regex(r"[a-z_]{1,8}", fullmatch=True).filter(
                lambda k: k not in result["solver"]["params"]))
            result["solver"]["params"][key] = 1.0
            new_result, names = result, (key,)
        elif defect == "result: smoothing":
            result["problem"]["smoothing"] = data.draw(st.one_of(st.just("sqrt"), st.text(max_size=6).filter(
                lambda s: s != "huber"), st.integers()))
            new_result, names = result, ("smoothing",)
        elif defect == "result: reason":
            value = data.draw(st.one_of(st.integers(), st.just([]), st.lists(st.integers(), min_size=1, max_size=2),
                                        st.just({}), st.just(["converged", "converged"])))
            _set(result, ("per_sample", "reason"), value)
            new_result, names = result, ("reason", "batch_size")
        elif defect == "result: batch_size":
            result["batch_size"] = data.draw(st.one_of(st.integers().filter(lambda n: n != 1), st.text(max_size=2),
                                                       st.none()))
            new_result, names = result, ("batch_size",)
        elif defect == "result: iterations":
            n = result["per_sample"]["iterations"][0]
            result["per_sample"]["iterations"] = data.draw(st.one_of(
                st.integers(0, 10**6).filter(lambda k: k != n).map(lambda k: [k]), st.just([n, n]), st.just([]),
                st.sampled_from([[float(n)], [str(n)], [None], [True]])))
            new_result, names = result, ("iterations",)
        elif defect == "result: phi_eps_final":
            result["per_sample"]["phi_eps_final"] = data.draw(st.one_of(
                st.just([]), st.lists(st.floats(0, 1), min_size=2, max_size=3), st.sampled_from([["x"], [None], "x"])))
            new_result, names = result, ("phi_eps_final",)
        elif defect == "result: constants":
            if data.draw(st.booleans()):
                result["constants"] = data.draw(st.one_of(st.lists(st.integers(), min_size=1, max_size=2),
                                                          st.text(min_size=1, max_size=3), st.integers()))
                names = ("constants",)
            else:
                key = data.draw(st.sampled_from(["L_f", "M", "L_g"]))
                result["constants"][key] = data.draw(st.one_of(
                    st.floats(max_value=-1e-300, allow_nan=False), st.sampled_from([math.nan, math.inf, "x", [1.0], True])))
                names = (key,)
            new_result = result
        elif defect == "result: dtype":
            result["problem"]["dtype"] = data.draw(st.one_of(st.sampled_from(["float16", "int64", "complex32", ""]),
                                                             st.integers(), st.none()))
            new_result, names = result, ("dtype",)
        elif defect.startswith("trace: "):
            names = ("trace.csv",)
            header, body = rows[0], rows[1:]
            kind = defect.split(": ")[1]
            if kind == "truncated":  # cut inside the data: at least the last row is lost or damaged
                text = Path(tpath).read_bytes()
                last = text.rstrip(b"\n").rindex(b"\n")
                new_trace = text[: data.draw(st.integers(0, last))]
            elif kind == "column removed":
                j = data.draw(st.integers(0, len(header) - 1))
                keep_header = data.draw(st.booleans())
                new_trace = [r[:j] + r[j + 1:] if (i or not keep_header) else r for i, r in enumerate(rows)]
            elif kind == "not a number":
                i = data.draw(st.integers(0, len(body) - 1))
                j = data.draw(st.sampled_from([k for k, h in enumerate(header) if h != "branch"]))
                body[i][j] = data.draw(st.sampled_from(["", "x", "1,5", "[1]", "None", "0x1g"]))
                new_trace = [header, *body]
            elif kind == "branch label":
                i = data.draw(st.integers(0, len(body) - 1))
                body[i][header.index("branch")] = data.draw(st.text(max_size=3).filter(
                    lambda s: s not in ("u", "v", "-")))
                new_trace = [header, *body]
            elif kind == "sample index":
                i = data.draw(st.integers(0, len(body) - 1))
                body[i][1] = str(data.draw(st.one_of(st.integers(1, 10**9), st.integers(-10**9, -1))))
                new_trace = [header, *body]
            elif kind == "repeated row":
                i = data.draw(st.integers(0, len(body) - 1))
                body.insert(data.draw(st.integers(i, len(body))), list(body[i]))
                new_trace = [header, *body]
            elif kind == "rows removed":
                i = data.draw(st.integers(0, len(body) - 1))
                k = data.draw(st.integers(1, len(body) - i))
                new_trace = [header, *body[:i], *body[i + k:]]
            else:  # an extra line of the wrong length or content
                extra = data.draw(st.sampled_from([["garbage"], [], ["0"] * (len(header) + 1), header]))
                new_trace = [*rows, extra]
        else:
            f = os.path.join(d, "file")
            with open(f, "w") as fh:
                fh.write("x\n")
            out = f if defect == "out: a file" else os.path.join(f, "report")
            names = ("out",)
        if new_result is not KEEP:
            with open(rpath, "wb") as fh:
                fh.write(new_result if isinstance(new_result, bytes) else json.dumps(new_result).encode())
        if new_trace is not KEEP:
            if isinstance(new_trace, bytes):
                raw = new_trace
            else:
                buf = io.StringIO()
                csv.writer(buf).writerows(new_trace)
                raw = buf.getvalue().encode()
            with open(tpath, "wb") as fh:
                fh.write(raw)
        cli_refused(["check", target, "--quiet", "--out", out], d, *names)


def _one_positive(v) -> bool:
    return (isinstance(v, list) and len(v) == 1 and isinstance(v[0], (int, float)) and not isinstance(v[0], bool)
            and math.isfinite(v[0]) and v[0] > 0)


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def test_fields_of_the_trace_are_the_documented_ones(run_dir):
    """The damaged traces above start from the documented columns."""
    header = next(csv.reader(io.StringIO(Path(run_dir, "trace.csv").read_text(), newline="")))
    assert header == ["iteration", "sample", *ALL_FIELDS]
