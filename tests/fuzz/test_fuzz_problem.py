"""Fuzzing ``lo.Problem``, ``lo.LeastSquares`` and the operators' constructors.

Classes of bad input: NaN/Inf in the data ``y``, the sensing matrix or the weight; the wrong
rank or shape of ``y`` for its operator; empty batches and zero-size axes; float16, bfloat16,
integer and bool dtypes; real data for a complex operator; non-tensor data; weights that are
zero, negative, NaN/Inf, bools, strings, complex, empty or 2-D tensors; objects that are not
a fidelity, a feature map (``nn.Module``) or an operator; masks that are not 0/1, complex or
sample nothing; matrices of the wrong shape or dtype and bad image shapes.  Each case is the
exact exception type with a message naming the parameter.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _fuzz import (
    BAD_COMPLEX_DTYPES,
    BAD_REAL_DTYPES,
    POSITIVE,
    bad_value,
    case,
    fuzz,
    poison,
    refused,
    to_dtype,
)
from _fuzz import tensor as rand_tensor
from hypothesis import given
from hypothesis import strategies as st

import lda_opt as lo
from lda_opt.operators import MRI, Identity, Matrix

KINDS = ["identity", "matrix", "mri"]


def _operator(kind: str, C: int, H: int, W: int, dtype: torch.dtype, seed: int):
    """``(A, shape of valid data y per sample, data dtype)``."""
    if kind == "identity":
        return Identity(), (C, H, W), dtype
    if kind == "matrix":
        M = max(1, C * H * W // 2)
        return Matrix(rand_tensor((M, C * H * W), dtype, seed), (C, H, W)), (M,), dtype
    mask = torch.zeros(H, W)
    mask[0, 0] = 1
    return MRI(mask), (C, H, W), torch.complex64 if dtype == torch.float32 else torch.complex128


base = st.tuples(st.sampled_from(KINDS), st.integers(1, 3), st.integers(1, 2), st.integers(2, 5),
                 st.integers(2, 5), st.sampled_from([torch.float32, torch.float64]), st.integers(0, 2**16))

Y_DEFECTS = ["nan/inf", "dtype: half/int/bool", "rank", "shape", "empty batch", "zero-size axis",
             "real data, complex operator", "not a tensor", "not an operator"]


@pytest.mark.parametrize("defect", Y_DEFECTS)
@fuzz(len(Y_DEFECTS))
@given(base, st.data())
def test_bad_data_is_refused_by_least_squares(defect, spec, data):
    kind, B, C, H, W, dtype, seed = spec
    if defect == "real data, complex operator" and kind != "mri":
        kind = "mri"
    case(defect)
    A, yshape, ydtype = _operator(kind, C, H, W, dtype, seed)
    y = rand_tensor((B, *yshape), ydtype, seed)
    exc, names = ValueError, ("y",)
    if defect == "nan/inf":
        y = poison(y, data.draw(st.integers(0, 10**6)), data.draw(st.sampled_from([math.nan, math.inf, -math.inf])))
    elif defect == "dtype: half/int/bool":
        y, exc = to_dtype(y, data.draw(st.sampled_from(BAD_REAL_DTYPES + BAD_COMPLEX_DTYPES))), TypeError
    elif defect == "rank":
        how = data.draw(st.sampled_from(["extra axis", "flat", "scalar"]))
        y = {"extra axis": lambda: y[..., None], "flat": lambda: y.reshape(-1), "scalar": lambda: y.reshape(-1)[0]}[how]()
    elif defect == "shape":
        grow = data.draw(st.integers(0, len(yshape) - 1))
        bad = list(yshape)
        bad[grow] += data.draw(st.sampled_from([1, 2]))
        if kind == "mri" and grow == 0:  # the mask broadcasts over channels: change H instead
            bad = [yshape[0], yshape[1] + 1, yshape[2]]
        if kind == "identity":  # any image shape is data for A = I: change the rank instead
            bad = [*yshape, 1]
        y = rand_tensor((B, *bad), ydtype, seed)
    elif defect == "empty batch":
        y = y[:0]
    elif defect == "zero-size axis":
        ax = data.draw(st.integers(1, y.dim() - 1))
        y = y.narrow(ax, 0, 0)
    elif defect == "real data, complex operator":
        y, exc = y.real.contiguous(), TypeError
    elif defect == "not a tensor":
        y, exc = data.draw(st.sampled_from([y.tolist(), y.numpy(), None, 1.0, "y"])), TypeError
    else:
        A, exc, names = data.draw(st.sampled_from([torch.eye(3), None, "I", lambda x: x, np.eye(2)])), TypeError, ("A",)
    with refused(exc, *names):
        lo.LeastSquares(A, y)


W_DEFECTS = ["number", "tensor: nan/inf", "tensor: <= 0", "tensor: rank", "tensor: empty", "tensor: dtype",
             "not a fidelity", "not a module"]


@pytest.mark.parametrize("defect", W_DEFECTS)
@fuzz(len(W_DEFECTS))
@given(base, st.data())
def test_bad_weight_fidelity_or_features_are_refused_by_problem(defect, spec, data):
    kind, B, C, H, W, dtype, seed = spec
    A, yshape, ydtype = _operator(kind, C, H, W, dtype, seed)
    f = lo.LeastSquares(A, rand_tensor((B, *yshape), ydtype, seed))
    q = lo.features.FiniteDifference()
    weight = 0.1
    exc, names = ValueError, ("weight",)
    if defect == "number":
        # (a real tensor of shape (B,) is a valid per-sample weight: not drawn here)
        weight, exc, why = data.draw(bad_value(POSITIVE).filter(
            lambda t: not (isinstance(t[0], torch.Tensor) and t[0].dim() == 1 and not t[0].is_complex())))
        defect = f"weight: {why}"
    elif defect == "tensor: nan/inf":
        weight = poison(torch.full((B,), 0.1, dtype=dtype), seed, data.draw(st.sampled_from([math.nan, math.inf])))
    elif defect == "tensor: <= 0":
        weight = torch.full((B,), 0.1, dtype=dtype)
        weight[seed % B] = data.draw(st.floats(max_value=0.0, allow_nan=False, min_value=-1e30))
    elif defect == "tensor: rank":
        weight = torch.full(data.draw(st.sampled_from([(B, 1), (1, B), (B, 1, 1)])), 0.1, dtype=dtype)
    elif defect == "tensor: empty":
        weight = torch.zeros(0, dtype=dtype)
    elif defect == "tensor: dtype":
        weight = torch.full((B,), 1, dtype=data.draw(st.sampled_from([torch.bool, torch.complex64, torch.complex128])))
        exc = TypeError
    elif defect == "not a fidelity":
        f = data.draw(st.sampled_from([None, A, f.y, "f", 1.0, {"y": f.y}]))
        exc, names = TypeError, ("fidelity",)
    else:
        q = data.draw(st.sampled_from([lambda x: x, None, "tv", torch.nn.Conv2d, torch.eye(2)]))
        exc, names = TypeError, ("features", "nn.Module")
    case(defect)
    with refused(exc, *names):
        lo.Problem(f, q, weight)


OP_DEFECTS = ["Phi: not a tensor", "Phi: rank", "Phi: dtype", "Phi: nan/inf", "Phi: no rows", "Phi: columns",
              "image_shape: kind", "image_shape: length", "image_shape: size",
              "mask: not a tensor", "mask: rank", "mask: complex", "mask: not 0/1", "mask: samples nothing"]


@pytest.mark.parametrize("defect", OP_DEFECTS)
@fuzz(len(OP_DEFECTS))
@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**16), st.data())
def test_bad_operator_arguments_are_refused(defect, H, W, seed, data):
    case(defect)
    n = H * W
    Phi = rand_tensor((max(1, n // 2), n), torch.float64, seed)
    shape = (1, H, W)
    mask = torch.ones(H, W)
    exc, names, make = ValueError, ("Phi",), (lambda: Matrix(Phi, shape))
    if defect == "Phi: not a tensor":
        Phi, exc = data.draw(st.sampled_from([Phi.tolist(), Phi.numpy(), None])), TypeError
    elif defect == "Phi: rank":
        Phi = Phi.reshape(-1) if data.draw(st.booleans()) else Phi[None]
    elif defect == "Phi: dtype":
        Phi, exc = Phi.to(data.draw(st.sampled_from(BAD_REAL_DTYPES))), TypeError
    elif defect == "Phi: nan/inf":
        Phi = poison(Phi, seed, data.draw(st.sampled_from([math.nan, math.inf, -math.inf])))
    elif defect == "Phi: no rows":
        Phi = Phi[:0]
    elif defect == "Phi: columns":
        Phi = rand_tensor((2, n + data.draw(st.integers(1, 3))), torch.float64, seed)
    elif defect == "image_shape: kind":
        shape, names = data.draw(st.sampled_from([n, None, "1x2x2", 2.5])), ("image_shape",)
    elif defect == "image_shape: length":
        shape, names = data.draw(st.sampled_from([(n,), (H, W), (1, 1, H, W)])), ("image_shape",)
    elif defect == "image_shape: size":
        i = data.draw(st.integers(0, 2))
        bad = data.draw(st.sampled_from([0, -1, 2.0, True, "3", None]))
        shape = tuple(bad if j == i else s for j, s in enumerate((1, H, W)))
        names = ("image_shape",)
        exc = ValueError if isinstance(bad, int) and not isinstance(bad, bool) else TypeError
    else:
        names, make = ("mask",), (lambda: MRI(mask))
        if defect == "mask: not a tensor":
            mask, exc = data.draw(st.sampled_from([mask.tolist(), mask.numpy(), None, 1])), TypeError
        elif defect == "mask: rank":
            mask = mask.reshape(-1) if data.draw(st.booleans()) else mask.reshape(1, 1, 1, H, W)
        elif defect == "mask: complex":
            mask, exc = mask.to(data.draw(st.sampled_from([torch.complex64, torch.complex128]))), TypeError
        elif defect == "mask: not 0/1":
            mask = poison(mask, seed, data.draw(st.sampled_from([0.5, -1.0, 2.0, math.nan, math.inf])))
        else:
            mask = torch.zeros(H, W) if data.draw(st.booleans()) else torch.zeros(0, W)
    with refused(exc, *names):
        make()
