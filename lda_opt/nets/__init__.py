"""Learned feature maps q for ``phi(x) = f(x) + kappa ||q(x)||_{2,1}`` and their checkpoints.

* :class:`SmoothReLU` -- activation of LDA eq. (33) / meta-LDA eq. (20);
* :class:`ComplexConv2d` -- complex convolution (meta-LDA Sec. 5.2);
* :class:`FeatureCNN` -- the LDA feature CNN g (LDA Sec. 4.1), real or complex;
* :class:`Adapter`, :class:`Composed` -- U-LDA adapters h and q = h o g (U-LDA Sec. 5.1);
* :func:`save_checkpoint` / :func:`load_checkpoint` -- safetensors + JSON, never pickle;
* :func:`checkpoint_reference` / :func:`check_reference` / :func:`load_composed` -- a U-LDA
  adapter checkpoint and the frozen g it was trained on (path + sha256; another g is refused).
"""

from lda_opt.nets.activation import SmoothReLU
from lda_opt.nets.checkpoint import (
    ARCHITECTURES,
    Checkpoint,
    architecture_of,
    build_architecture,
    check_reference,
    checkpoint_reference,
    config_path,
    file_sha256,
    load_checkpoint,
    load_composed,
    register_architecture,
    save_checkpoint,
)
from lda_opt.nets.cnn import Adapter, Composed, FeatureCNN, count_parameters, xavier_init_
from lda_opt.nets.conv import ComplexConv2d
from lda_opt.nets.mol import MOLCNN  # registers the MOL network's architecture for checkpoints

__all__ = [
    "ARCHITECTURES",
    "MOLCNN",
    "Adapter",
    "Checkpoint",
    "ComplexConv2d",
    "Composed",
    "FeatureCNN",
    "SmoothReLU",
    "architecture_of",
    "build_architecture",
    "check_reference",
    "checkpoint_reference",
    "config_path",
    "count_parameters",
    "file_sha256",
    "load_checkpoint",
    "load_composed",
    "register_architecture",
    "save_checkpoint",
    "xavier_init_",
]
