"""Tests for the procedurally drawn `garment_shapes` TFDS dataset (`small` config)."""

import hashlib
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sparse_ae.datasets import garment_shapes as gs  # importing registers the builder

SMALL_SPLITS = {"train": 2_000, "test": 500}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """`garment_shapes/small` prepared once for the whole module."""
    path = str(tmp_path_factory.mktemp("tfds"))
    tfds.builder("garment_shapes/small", data_dir=path).download_and_prepare()
    return path


@pytest.fixture(scope="module")
def splits(data_dir):
    """{split: (images uint8 (N, 28, 28, 1), labels (N,))}, loaded by name."""
    ds = tfds.load("garment_shapes/small", data_dir=data_dir, download=False, batch_size=-1, as_supervised=True)
    return {name: tuple(tfds.as_numpy(pair)) for name, pair in ds.items()}


def _example_hashes(images, labels):
    pairs = zip(images, labels, strict=True)
    return sorted(hashlib.sha1(img.tobytes() + bytes([int(lab)])).hexdigest() for img, lab in pairs)


def test_builder_registered_with_configs():
    assert "garment_shapes" in tfds.list_builders()
    builder = tfds.builder("garment_shapes")
    assert builder.builder_config.name == "full"
    assert (builder.builder_config.num_train, builder.builder_config.num_test) == (60_000, 10_000)
    assert builder.info.features["label"].names == list(gs.CLASS_NAMES)
    assert "not fashion-mnist" in builder.info.description.lower()


def test_split_sizes(data_dir, splits):
    info = tfds.builder("garment_shapes/small", data_dir=data_dir).info
    for name, size in SMALL_SPLITS.items():
        assert info.splits[name].num_examples == size
        assert len(splits[name][0]) == size


def test_load_by_name_element_spec(data_dir):
    ds = tfds.load("garment_shapes/small", split="test", data_dir=data_dir, download=False)
    spec = ds.element_spec
    assert spec["image"].shape == (28, 28, 1) and spec["image"].dtype.name == "uint8"
    assert spec["label"].shape == () and spec["label"].dtype.name == "int64"
    example = next(iter(tfds.as_numpy(ds)))
    assert example["image"].shape == (28, 28, 1) and 0 <= example["label"] < 10


def test_images_and_labels(splits):
    for images, labels in splits.values():
        assert images.shape[1:] == (28, 28, 1) and images.dtype == np.uint8
        assert labels.min() >= 0 and labels.max() < 10
        # Labels are balanced exactly: each class is a tenth of the split.
        np.testing.assert_array_equal(np.bincount(labels, minlength=10), len(labels) // 10)


def test_images_not_blank_nor_saturated(splits):
    images = splits["train"][0][..., 0].astype(np.float32) / 255.0
    assert 0.08 < images.mean() < 0.45
    foreground = (images > 0).mean(axis=(1, 2))
    assert foreground.min() > 0.10 and foreground.max() < 0.80
    assert (images == 1.0).mean() < 0.05
    # Background is black, like Fashion-MNIST: the corners are almost always empty.
    assert (images[:, :2, :2] == 0).mean() > 0.95


def test_classes_are_distinct_and_learnable(splits):
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    x_train = x_train.reshape(len(x_train), -1) / 255.0
    x_test = x_test.reshape(len(x_test), -1) / 255.0
    centroids = np.stack([x_train[y_train == c].mean(0) for c in range(10)])
    rms = np.sqrt(((centroids[:, None] - centroids[None]) ** 2).mean(-1))
    assert rms[~np.eye(10, dtype=bool)].min() > 0.04
    # Even a nearest-centroid classifier must do far better than chance (10%).
    dist = ((x_test[:, None] - centroids[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == y_test).mean() > 0.6


def test_train_and_test_differ(splits):
    train = set(_example_hashes(*splits["train"]))
    assert not train.intersection(_example_hashes(*splits["test"]))


def test_draw_garments_is_deterministic():
    labels = np.arange(50) % 10
    a = gs.draw_garments(labels, np.random.default_rng(7))
    b = gs.draw_garments(labels, np.random.default_rng(7))
    c = gs.draw_garments(labels, np.random.default_rng(8))
    assert a.shape == (50, 28, 28, 1) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_draw_garments_rejects_bad_labels():
    with pytest.raises(ValueError):
        gs.draw_garments(np.array([0, 10]), np.random.default_rng(0))


def test_prepared_data_is_a_pure_function_of_the_config(splits):
    # Regenerate the test split from the config alone; tfds shuffles examples on
    # write, so compare the sets of (image, label) bytes.
    builder = tfds.builder("garment_shapes/small")
    generators = builder._split_generators(dl_manager=None)  # pylint: disable=protected-access
    examples = [ex for _, ex in generators["test"]]
    regenerated = _example_hashes([ex["image"] for ex in examples], [ex["label"] for ex in examples])
    assert regenerated == _example_hashes(*splits["test"])


@pytest.mark.slow  # about a minute on 2 cores: 2,500 images drawn, written and read back twice
class GarmentShapesSmallBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """TFDS's own builder checks on `small`: registered, prepares, reads back in full with the declared
    features, the split sizes recorded and reloaded, no example in two splits, keys free of local paths,
    and no `os`/`open` in the builder's module (TFDS mocks them out while preparing).

    A generated dataset downloads nothing, so there is no dummy data: the download manager TFDS
    mocks is never asked for a URL (a request would be recorded and fail the checksum check, as no
    checksums file exists). EXAMPLE_DIR, where dummy data would be, must exist: it names this folder,
    which TFDS never reads for a builder that downloads nothing.
    """

    DATASET_CLASS = gs.GarmentShapes
    BUILDER_CONFIG_NAMES_TO_TEST = ["small"]
    SPLITS = SMALL_SPLITS
    EXAMPLE_DIR = os.path.dirname(os.path.abspath(__file__))


class GarmentShapesBrightBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """The same checks on a brightened config like `small_bright` (the drift tests' shifted data),
    at a tenth of its size: the brightness path of the generator, quick enough for `make test-fast`."""

    DATASET_CLASS = gs.GarmentShapes
    BUILDER_CONFIG_NAMES_TO_TEST = [
        gs.GarmentShapesConfig(name="tiny_bright", num_train=200, num_test=50, seed=20241, brightness=1.8)
    ]
    SPLITS = {"train": 200, "test": 50}
    EXAMPLE_DIR = os.path.dirname(os.path.abspath(__file__))
