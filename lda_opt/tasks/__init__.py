"""Imaging tasks: forward operator, noise model, measured data and starting point, in one place.

A task turns ground-truth images into a :class:`Measurement` (operator ``A``, data ``y``,
start ``x0``, truth, and the map back to whole images); ``Measurement.problem(q, weight)``
is the :class:`~lda_opt.Problem` ``1/2 ||A x - y||^2 + weight ||q(x)||_{2,1}``.  Every
random draw (sensing matrix, mask, noise) comes from a seed field of the task.

* :class:`DenoiseTask`: ``A = I``; ``gaussian`` noise; ``x0 = y``.
* :class:`BlockCSTask`: 33 x 33 blocks, Gaussian ``A`` with orthonormal rows (LDA Sec.
  4.2.1); ``gaussian`` noise on ``b``; ``x0 = Q b``.
* :class:`MRITask`: ``A = P F`` with a seeded radial / Cartesian / variable-density mask;
  ``noise_model`` ``kspace`` (default), ``kspace-pairs`` or ``image``; ``x0 = A^H y``.

The callers and the noise model each one uses (kept bit for bit from before the tasks
were gathered here):

* :func:`lda_opt.instances.make_instance` (``lda-opt solve``): ``tv-denoise``
  ``DenoiseTask`` (seed ``seed``), ``cs`` ``BlockCSTask`` with ``gaussian`` noise on ``b``
  (seed ``seed``), ``mri`` ``MRITask`` with ``kspace`` noise (seed ``seed``);
* LDA-Net training and its benchmarks (:mod:`lda_opt.learning`): ``BlockCSTask`` without
  noise, ``MRITask`` with ``kspace`` noise (``task.noise`` of the config);
* the complexity experiment (:func:`lda_opt.experiments.complexity.build_problem`): ``MRITask`` with
  ``kspace-pairs`` noise;
* ``benchmarks/race.py``: ``MRITask`` with ``image`` noise (seed ``seed + 1``),
  ``BlockCSTask`` with ``gaussian`` noise (seed ``seed + 1``);
* ``benchmarks/_common.denoise_problem`` (``overhead.py``, ``batch.py``): ``DenoiseTask``
  (seed ``seed + 1``).

:meth:`BlockCSTask.metadata` / :meth:`MRITask.metadata` is what a checkpoint stores;
:func:`task_from_metadata` rebuilds the task from it, so the sensing matrix or mask of a
checkpoint is always regenerated from its stored seed; :func:`task_at_shape` gives the same
sensing model (MRI: mask pattern, ratio and seed) on images of another size.
"""

from .block_cs import BlockCSTask
from .denoise import DenoiseTask
from .measurement import Measurement
from .metadata import normalize_problem_name, task_at_shape, task_from_metadata
from .mri import MRI_NOISE_MODELS, MRITask
from .noise import NOISE_MODELS, add_noise

__all__ = [
    "MRI_NOISE_MODELS",
    "NOISE_MODELS",
    "BlockCSTask",
    "DenoiseTask",
    "MRITask",
    "Measurement",
    "add_noise",
    "normalize_problem_name",
    "task_at_shape",
    "task_from_metadata",
]
