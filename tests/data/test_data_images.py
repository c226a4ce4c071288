"""Offline natural-image registry: split, ranges, resizing, files."""

import numpy as np
import pytest
import torch
from skimage import data as skdata

from lda_opt.data import (
    TEST_IMAGES,
    TRAIN_IMAGES,
    list_images,
    load_image,
    load_images,
    test_images,
    train_images,
)


def test_split_is_fixed_disjoint_and_complete():
    assert set(train_images()).isdisjoint(test_images())
    assert sorted(train_images() + test_images()) == list_images()
    assert test_images() == ["camera", "astronaut", "coins", "moon", "coffee"]
    assert len(TRAIN_IMAGES) == 13 and len(TEST_IMAGES) == 5


@pytest.mark.parametrize("name", list_images())
def test_every_image_loads_offline_in_unit_range(name):
    x = load_image(name)
    assert x.dim() == 4 and x.shape[:2] == (1, 1) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.std() > 0.01


def test_camera_values_are_uint8_over_255():
    x = load_image("camera", dtype=torch.float64)
    ref = torch.from_numpy(skdata.camera().astype(np.float64) / 255.0)
    assert torch.equal(x[0, 0], ref)


def test_resize_shape_range_and_mean():
    x = load_image("camera", size=(64, 96), dtype=torch.float64)
    assert x.shape == (1, 1, 64, 96)
    full = load_image("camera", dtype=torch.float64)
    assert 0 <= x.min() and x.max() <= 1
    # anti-aliased downsampling approximately preserves the mean intensity
    assert abs(x.mean().item() - full.mean().item()) < 0.01
    assert load_images("test", size=32).shape == (5, 1, 32, 32)


def test_png_and_npy_paths(tmp_path):
    from skimage.io import imsave

    arr = (np.arange(12 * 10).reshape(12, 10) % 256).astype(np.uint8)
    imsave(tmp_path / "a.png", arr, check_contrast=False)
    np.save(tmp_path / "a.npy", arr.astype(np.float64) / 255.0)
    x_png = load_image(str(tmp_path / "a.png"), dtype=torch.float64)
    x_npy = load_image(tmp_path / "a.npy", dtype=torch.float64)
    assert torch.equal(x_png, x_npy)
    assert x_png.shape == (1, 1, 12, 10)


def test_npy_never_unpickles(tmp_path):
    obj = np.array([{"a": 1}], dtype=object)
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    with pytest.raises(ValueError):
        load_image(tmp_path / "obj.npy")


def test_bad_inputs():
    with pytest.raises(ValueError, match="valid names"):
        load_image("lena")
    with pytest.raises(ValueError, match="dtype"):
        load_image("camera", dtype=torch.int32)
    with pytest.raises(ValueError, match="size"):
        load_image("camera", size=0)


def test_empty_and_damaged_image_files_are_value_errors_naming_the_file(tmp_path):
    """An empty array is refused before numpy's mean/resize (no RuntimeWarning); a damaged
    PNG or NPY is a ValueError naming the file, whatever the decoder raised (issue 15)."""
    import warnings

    from lda_opt.data.images import load_image_file

    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 5)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"image array is empty \(shape \(0, 5\)\)"):
            load_image_file(empty)
    good = tmp_path / "good.npy"
    np.save(good, np.ones((4, 4)))
    cut = tmp_path / "cut.npy"
    cut.write_bytes(good.read_bytes()[:70])
    png = tmp_path / "bad.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for path in (cut, png, obj):
        with pytest.raises(ValueError, match=f"{path.name} cannot be read") as info:
            load_image_file(path)
        assert "\n" not in str(info.value)
