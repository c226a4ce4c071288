"""The pyplot that the library's figure writers use, without taking a user's backend away.

Every PNG the library writes is drawn by a function that saves and closes its own figure.  A
process that has not chosen a backend (``lda-opt`` on a server, a test) gets the headless Agg
backend; a session that has already imported pyplot -- a Jupyter kernel with the inline
backend, an interactive window -- keeps its own, so that calling e.g. :func:`lda_opt.learning.train`
in a notebook does not silently stop the notebook's later ``plt.show()`` from displaying.
"""

from __future__ import annotations

import sys

__all__ = ["pyplot"]


def pyplot():
    """``matplotlib.pyplot``, switched to Agg first unless pyplot was already imported."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
