r"""Theorem constants and bounds for LDA, meta-LDA and the modified ELDA.

Every function is pure: floats (or numpy / torch scalars) in, Python floats or ints out.
Each docstring cites the equation it evaluates, says whether the value is a **certified upper
bound** (valid whenever the stated assumptions hold, including the corrections listed in
``theory/``), a **certified lower bound**, or an **estimate**, and names its entry in the
theorem catalogue (``theory/lda.md``, ``theory/elda.md``, ``theory/meta_lda.md``).

Conventions (``theory/README.md``):

* The library minimizes ``phi = f + kappa * r`` with ``r(x) = sum_{i=1}^m ||q_i(x)||``.  The
  papers set ``kappa = 1`` (LDA, ELDA) or fold ``kappa = sigmoid(omega)`` in loosely
  (meta-LDA); here every constant involving ``q`` carries ``kappa``.  ``kappa = 1``
  reproduces the papers' printed constants.
* ``M`` bounds the operator norm of the *whole* Jacobian ``sup_x ||grad q(x)||`` and ``L_g``
  is the Lipschitz constant of ``x -> grad q(x)`` in operator norm; ``m`` is the number of
  groups.  Complex inputs are treated as real vectors ``(Re x, Im x)``.
* ``num_reductions`` counts the eps-reductions ``ell = min{l >= 0 : sigma eps0 gamma^l <
  eps_tol}``.  The total-iteration bounds bound ``k_ell + 1``, the number of iterations up to
  and including the one that performs the ell-th reduction (an implementation that tests the
  stopping rule at the start of the next iteration performs at most one more).
* Segment bounds include the ``+1`` that the printed eqs. (27) and (4.27) omit: Lemma 3.3 /
  Lemma 4.5 bound the *index* ``B`` of a segment's last iteration, so the segment has at
  most ``B + 1`` iterations.

Layout (one topic per module, all names re-exported here, so ``bounds.name`` is the API):

* :mod:`._common` -- validators (``_num``, ``_pos``, ``_count``, ...) and ``_CERT_INFLATE``;
* :mod:`.smoothing` -- Lipschitz constants of ``grad phi_eps``, smoothing gaps, ``num_reductions``;
* :mod:`.lda` -- LDA step range, Lemma 3.3 (segments) and Thm 3.5 (totals);
* :mod:`.metalda` -- meta-LDA Lemma A3 (line search) and its fixed-eps count;
* :mod:`.elda` -- modified ELDA Lemmas 4.4-4.5 and Thm 4.6;
* :mod:`.norms` -- operator norms of linear features and finite differences;
* :mod:`.cnn` -- certified convolution norms and CNN constants.
"""

from __future__ import annotations

# The imports the single-file module had stay in its namespace (``bounds.math``,
# ``bounds.power_iteration``, ...), so ``dir(lda_opt.bounds)`` is unchanged by the split.
import math  # noqa: F401
from collections.abc import Callable, Sequence  # noqa: F401
from typing import Any  # noqa: F401

import numpy as np  # noqa: F401
import torch  # noqa: F401

from .._validate import integer, real  # noqa: F401
from ..operators import power_iteration  # noqa: F401
from ._common import (  # noqa: F401 - private helpers other modules and tests use
    _CERT_INFLATE,
    _ceil_safe,
    _count,
    _gap_pair,
    _nonneg,
    _num,
    _open01,
    _pos,
    _scalar,
)
from .cnn import (  # noqa: F401
    _as_weight,
    _conv_layer,
    _hw,
    _layer_stack,
    _net_constants,
    _pair,
    cnn_constants,
    conv_operator_norm,
    conv_operator_norm_complex,
)
from .elda import (  # noqa: F401
    _elda_common,
    elda_C_eps,
    elda_fixed_eps_iterations,
    elda_lmax,
    elda_min_step,
    elda_segment_bound,
    elda_segment_constants,
    elda_total_bound,
    elda_total_bound_sum,
)
from .lda import (  # noqa: F401
    _check_deltas,
    lda_fixed_eps_iterations,
    lda_segment_bound,
    lda_segment_constants,
    lda_step_range,
    lda_total_bound,
    lda_total_bound_sum,
)
from .metalda import (
    metalda_C,
    metalda_fixed_eps_iterations,
    metalda_max_backtracks,
    metalda_min_step,
    metalda_step_threshold,
)
from .mol import *  # MOL contraction / robustness bounds (mol-deq-supplement; theory/mol.md)
from .norms import (  # noqa: F401
    _adjoint_of,
    finite_difference_norm,
    finite_difference_norm_bound,
    linear_feature_constants,
    operator_norm_sq,
)
from .smoothing import (
    lipschitz_eps,
    lipschitz_huber,
    lipschitz_sqrt,
    num_reductions,
    smoothing_gap,
)

__all__ = [  # noqa: RUF022 - grouped by paper
    # smoothing and Lipschitz constants
    "lipschitz_eps",
    "lipschitz_huber",
    "lipschitz_sqrt",
    "smoothing_gap",
    "num_reductions",
    # LDA
    "lda_step_range",
    "lda_fixed_eps_iterations",
    "lda_segment_constants",
    "lda_segment_bound",
    "lda_total_bound",
    "lda_total_bound_sum",
    # ELDA
    "elda_lmax",
    "elda_min_step",
    "elda_C_eps",
    "elda_fixed_eps_iterations",
    "elda_segment_constants",
    "elda_segment_bound",
    "elda_total_bound",
    "elda_total_bound_sum",
    # meta-LDA
    "metalda_step_threshold",
    "metalda_max_backtracks",
    "metalda_min_step",
    "metalda_C",
    "metalda_fixed_eps_iterations",
    # constant estimators
    "operator_norm_sq",
    "linear_feature_constants",
    "finite_difference_norm_bound",
    "finite_difference_norm",
    "conv_operator_norm",
    "conv_operator_norm_complex",
    "cnn_constants",
]
