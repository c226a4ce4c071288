"""Offline, seeded data: natural images, block-CS patches, MRI phantoms and k-space masks.

Nothing here downloads anything.

* images -- scikit-image's bundled images with a fixed train/test split by name;
* block_cs -- 33 x 33 block compressed sensing (LDA Sec. 4.2.1);
* mri -- Shepp-Logan, random-ellipse phantoms, natural images as MRI ground truths;
* masks -- radial / Cartesian / variable-density masks (unshifted FFT layout, DC at [0, 0]).
"""

from lda_opt.data import masks
from lda_opt.data.block_cs import (
    BLOCK_N,
    BLOCK_SIZE,
    CS_RATIOS,
    block_grid,
    blocks_to_image,
    gaussian_sampling_matrix,
    image_to_blocks,
    initial_blocks,
    initializer_matrix,
    measure_blocks,
    measurement_count,
    random_blocks,
    training_blocks,
)
from lda_opt.data.images import (
    TEST_IMAGES,
    TRAIN_IMAGES,
    list_images,
    load_image,
    load_image_file,
    load_images,
    test_images,
    train_images,
)
from lda_opt.data.mri import (
    apply_phase,
    natural_mri,
    random_ellipses,
    shepp_logan,
    smooth_random_phase,
)

__all__ = [
    "BLOCK_N",
    "BLOCK_SIZE",
    "CS_RATIOS",
    "TEST_IMAGES",
    "TRAIN_IMAGES",
    "apply_phase",
    "block_grid",
    "blocks_to_image",
    "gaussian_sampling_matrix",
    "image_to_blocks",
    "initial_blocks",
    "initializer_matrix",
    "list_images",
    "load_image",
    "load_image_file",
    "load_images",
    "masks",
    "measure_blocks",
    "measurement_count",
    "natural_mri",
    "random_blocks",
    "random_ellipses",
    "shepp_logan",
    "smooth_random_phase",
    "test_images",
    "train_images",
    "training_blocks",
]
