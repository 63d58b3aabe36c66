"""The exported SavedModel refuses wrong inputs with a clear error instead of returning garbage.

A real export (`sparse_ae.export`) of a model trained for one epoch, loaded back with
tf.saved_model.load, called through its signatures (what TF Serving and TFMA call) and through
the restored functions.
"""

import numpy as np
import pytest
import tensorflow as tf

from sparse_ae.config import SparseAEConfig
from sparse_ae.data import load_images, to_pairs
from sparse_ae.export import export_saved_model
from sparse_ae.inference import anomaly_scores
from sparse_ae.model import build_model


@pytest.fixture(scope="module")
def served(garment_data_dir, tmp_path_factory):
    """(loaded SavedModel, uint8 test images, the Keras model's own PSNR on them)."""
    config = SparseAEConfig(hidden_dims=(64,), latent_dim=16, batch_size=64, epochs=1, shuffle_buffer=512)
    images = load_images("garment_shapes/small", "train", garment_data_dir, download=False)
    model = build_model(config)
    model.fit(to_pairs(images, config, training=True), epochs=1, verbose=0)
    test = np.stack(
        list(load_images("garment_shapes/small", "test", garment_data_dir, False).take(8).as_numpy_iterator())
    )
    path = export_saved_model(model, str(tmp_path_factory.mktemp("export") / "model"))
    return tf.saved_model.load(path), test, anomaly_scores(model, test)["psnr"]


def examples(pixels) -> tf.Tensor:
    return tf.constant(
        [
            tf.train.Example(
                features=tf.train.Features(
                    feature={"image": tf.train.Feature(int64_list=tf.train.Int64List(value=list(pixels)))}
                )
            ).SerializeToString()
        ]
    )


def test_valid_inputs_agree_across_signatures(served):
    """The checks change nothing for valid inputs: the three signatures give the Keras model's PSNR."""
    model, images, keras_psnr = served
    psnr_uint8 = model.signatures["reconstruct_uint8"](images=tf.constant(images))["psnr"].numpy()
    scaled = tf.constant(images.astype(np.float32) / 127.5 - 1.0)
    psnr_float = model.signatures["reconstruct"](images=scaled)["psnr"].numpy()
    psnr_examples = model.signatures["serving_default"](
        examples=tf.concat([examples(image.reshape(-1)) for image in images], 0)
    )["psnr"].numpy()
    np.testing.assert_allclose(psnr_uint8, keras_psnr, rtol=1e-5)
    np.testing.assert_allclose(psnr_float, psnr_uint8, rtol=1e-5)
    np.testing.assert_allclose(psnr_examples, psnr_uint8, rtol=1e-5)


WRONG_INPUTS = [
    # (signature, input name, value, error type, fragments of the message)
    (
        "reconstruct",
        "images",
        np.zeros((2, 27, 27, 1), np.float32),
        tf.errors.InvalidArgumentError,
        ["reconstruct: images must have shape (batch, 28, 28, 1)", "[27,27,1]"],
    ),
    (
        "reconstruct",
        "images",
        np.zeros((2, 784), np.float32),
        tf.errors.InvalidArgumentError,
        ["images must have shape (batch, 28, 28, 1)", "[784]"],
    ),
    (
        "reconstruct_uint8",
        "images",
        np.zeros((2, 28, 28, 3), np.uint8),
        tf.errors.InvalidArgumentError,
        ["reconstruct_uint8: images must have shape (batch, 28, 28, 1)", "[28,28,3]"],
    ),
    (
        "reconstruct",
        "images",
        np.zeros((2, 28, 28, 1), np.float64),
        tf.errors.InvalidArgumentError,
        ["expected to be a float tensor but is a double tensor"],
    ),
    (
        "reconstruct_uint8",
        "images",
        np.zeros((2, 28, 28, 1), np.int32),
        tf.errors.InvalidArgumentError,
        ["expected to be a uint8 tensor but is a int32 tensor"],
    ),
    (
        "reconstruct_uint8",
        "images",
        np.zeros((2, 28, 28, 1), np.float32),
        tf.errors.InvalidArgumentError,
        ["expected to be a uint8 tensor but is a float tensor"],
    ),
    (
        "reconstruct",
        "images",
        np.full((2, 28, 28, 1), 127.0, np.float32),
        tf.errors.InvalidArgumentError,
        [
            "reconstruct: images must be finite and lie in [-1, 1] (uint8 pixels: use reconstruct_uint8)",
            "[0] [NaN or infinite values, finite ones from] [127] [to] [127]",
        ],
    ),
    (
        "reconstruct",
        "images",
        np.where(np.arange(784).reshape(1, 28, 28, 1) == 5, np.nan, 0).astype(np.float32),
        tf.errors.InvalidArgumentError,
        [
            "images must be finite and lie in [-1, 1]",
            "got] [1] [NaN or infinite values, finite ones from] [0] [to] [0]",
        ],
    ),
    (
        "reconstruct",
        "images",
        np.full((1, 28, 28, 1), np.inf, np.float32),
        tf.errors.InvalidArgumentError,
        ["images must be finite and lie in [-1, 1]", "got] [784] [NaN or infinite values"],
    ),
]


@pytest.mark.parametrize(
    "signature, name, value, error, fragments",
    WRONG_INPUTS,
    ids=["27x27", "flat", "rgb", "float64", "int32-to-uint8", "float-to-uint8", "out-of-range", "nan", "inf"],
)
def test_signatures_refuse_wrong_images(served, signature, name, value, error, fragments):
    model = served[0]
    with pytest.raises(error) as caught:
        model.signatures[signature](**{name: tf.constant(value)})
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "pixels, fragments",
    [
        ([300] * 784, ["serving_default: image pixels must be integers in [0, 255]", "[300]"]),
        ([-1] + [0] * 783, ["pixels must be integers in [0, 255]", "[-1]"]),
        ([0] * 729, ["Key: image", "Values size: 729 but output shape: [784]"]),
    ],
    ids=["above-255", "negative", "27x27"],
)
def test_serving_default_refuses_bad_examples(served, pixels, fragments):
    """A cast to uint8 would wrap 300 to 44: refused instead."""
    model = served[0]
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        model.signatures["serving_default"](examples=examples(pixels))
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_restored_functions_check_too(served):
    """Python callers of the restored functions get the same checks (and TypeError for a wrong tensor dtype)."""
    model, images, _ = served
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must have shape \(batch, 28, 28, 1\)"):
        model.reconstruct(tf.zeros((2, 27, 27, 1)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be finite and lie in \[-1, 1\]"):
        model.reconstruct(tf.fill((2, 28, 28, 1), 2.0))
    with pytest.raises(TypeError, match="float64"):
        model.reconstruct(tf.zeros((2, 28, 28, 1), tf.float64))
    assert model.reconstruct_uint8(tf.constant(images))["psnr"].shape == (len(images),)
