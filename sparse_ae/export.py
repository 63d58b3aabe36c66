"""Export a trained model as a SavedModel with serving signatures (TF Serving, TFMA, Python).

Signatures:
- `serving_default`: serialized tf.Examples (flat int64 `image`, optional `label`) -> reconstruction,
  latent code, per-image PSNR, MSE, mean latent activation and Hoyer sparsity; with the code's
  eval-split unit scales also the active units and the PSNR with only those decoded; with a linear
  baseline also the PCA reconstruction's PSNR and the gain over it (at the full code size and at
  the code's active size). What TFMA and TF Serving's Example-based APIs call.
- `reconstruct`: float32 images in [-1, 1], shape (batch, H, W, C) -> the same outputs.
- `reconstruct_uint8`: uint8 images in [0, 255] -> the same outputs.
The per-image PSNR is the anomaly score and the figure the Evaluator averages: one definition
(`sparse_ae.metrics`) for training, serving and evaluation.

Inputs are checked in the graph, so a wrong input fails with InvalidArgumentError and a message
saying what is allowed instead of returning garbage: images of another shape (a signature call
does not check the shape it declares), float images that are not finite or outside [-1, 1], and
Example pixels outside 0..255 (a cast to uint8 would wrap them). A wrong dtype is refused by the
signature itself. The image inputs declare rank 4 with free sizes: a fully static shape would
let TensorFlow fold the size check away.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from sparse_ae.config import SparseAEConfig
from sparse_ae.data import IMAGE_KEY, example_feature_spec, scale_images
from sparse_ae.linear_baseline import LinearBaseline
from sparse_ae.metrics import mse_per_image, psnr_from_mse
from sparse_ae.model import SparseAutoencoder
from sparse_ae.serving_layout import RECONSTRUCT, RECONSTRUCT_UINT8, SERVING_DEFAULT
from sparse_ae.sparsity import active_code_size, active_only, active_units, hoyer

PSNR_OUTPUT = "psnr"
MEAN_ACTIVATION_OUTPUT = "mean_activation"
TARGET_RATIO_OUTPUT = "activation_to_target"
LINEAR_PSNR_OUTPUT = "linear_baseline_psnr"
GAIN_OUTPUT = "psnr_gain_over_linear"
# The code's sparsity per image (sparse_ae/sparsity.py), with each unit's scale measured on the eval split.
ACTIVE_UNITS_OUTPUT = "active_units"
HOYER_OUTPUT = "hoyer"
PSNR_ACTIVE_ONLY_OUTPUT = "psnr_active_only"  # PSNR with every inactive unit set to 0
ZEROING_COST_OUTPUT = "zeroing_cost"  # psnr - psnr_active_only
# PCA with as many components as the code's mean active units (the linear code of a sparse code's size).
LINEAR_PSNR_AT_ACTIVE_OUTPUT = "linear_baseline_psnr_at_active"
GAIN_AT_ACTIVE_OUTPUT = "psnr_gain_over_linear_at_active"


class ServingModule(tf.Module):
    """Holds the model's variables and the signature functions."""

    def __init__(
        self,
        model: SparseAutoencoder,
        baseline: LinearBaseline | None = None,
        unit_scale: list[float] | None = None,
        active_size: int | None = None,
    ):
        super().__init__(name="sparse_autoencoder_serving")
        # Only the variables are tracked, not the Keras models: saving a tracked Keras model also
        # traces and writes every layer's own call functions (Keras 2's SavedModel format), most of an
        # export's time (docs/benchmarks.md); the signatures below are all the SavedModel serves.
        self.model_variables = list(model.variables)
        self._encode, self._decode = _untracked(model.encoder), _untracked(model.decoder)
        self.config: SparseAEConfig = model.config
        # The linear baseline travels as constants, so every consumer of the SavedModel (TFMA's
        # gate, a user's Python) scores it per image beside the model, by the same definition.
        self.baseline_mean = None if baseline is None else tf.constant(baseline.mean, name="baseline_mean")
        self.baseline_components = (
            None if baseline is None else tf.constant(baseline.components, name="baseline_components")
        )
        # Each unit's largest value on the eval split: what "active" is measured against per image.
        self.unit_scale = None if unit_scale is None else tf.constant(unit_scale, tf.float32, name="unit_scale")
        self.active_size = active_size
        images = [None] * (len(self.config.image_shape) + 1)  # sizes checked in _checked_shape
        # No AutoGraph: the signatures' control flow is explicit (tf.cond), and converting the
        # Keras layers' Python on every trace made each export slow (docs/benchmarks.md).
        self.serve_examples = tf.function(
            self._serve_examples, input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False
        )
        self.reconstruct = tf.function(
            self._reconstruct, input_signature=[tf.TensorSpec(images, tf.float32, name="images")], autograph=False
        )
        self.reconstruct_uint8 = tf.function(
            self._reconstruct_uint8, input_signature=[tf.TensorSpec(images, tf.uint8, name="images")], autograph=False
        )

    def _checked_shape(self, images: tf.Tensor, signature: str) -> tf.Tensor:
        """images with the static shape (batch, H, W, C), after a runtime check that they have it."""
        expected = ",".join(str(size) for size in self.config.image_shape)
        actual = tf.strings.reduce_join(tf.strings.as_string(tf.shape(images)[1:]), separator=",")
        check = tf.debugging.Assert(
            tf.equal(actual, expected),
            [
                f"{signature}: images must have shape (batch, {expected.replace(',', ', ')}); got images of shape",
                actual,
            ],
        )
        with tf.control_dependencies([check]):
            return tf.ensure_shape(tf.identity(images), [None, *self.config.image_shape])

    def _reconstruct(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        images = self._checked_shape(images, RECONSTRUCT)
        # One pass: the largest magnitude is NaN or infinite when any value is (reduce_max propagates NaN).
        inside = tf.reduce_max(tf.abs(images)) <= 1.0

        def explain():
            finite = tf.boolean_mask(images, tf.math.is_finite(images))
            return [
                f"{RECONSTRUCT}: images must be finite and lie in [-1, 1] (uint8 pixels: use {RECONSTRUCT_UINT8}); got",
                tf.size(images) - tf.size(finite),
                "NaN or infinite values, finite ones from",
                tf.reduce_min(finite),
                "to",
                tf.reduce_max(finite),
            ]

        with tf.control_dependencies([_require(inside, explain)]):
            return self._outputs(tf.identity(images))

    def _outputs(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        latent = self._encode(images, training=False)
        reconstruction = self._decode(latent, training=False)
        mse = mse_per_image(images, reconstruction)
        outputs = {
            "reconstruction": reconstruction,
            "latent": latent,
            "mse": mse,
            PSNR_OUTPUT: psnr_from_mse(mse),
            # Its mean over a split is the split's mean latent activation; over the sparsity_target
            # the figure the sparsity gate bounds.
            MEAN_ACTIVATION_OUTPUT: tf.reduce_mean(latent, axis=1),
        }
        outputs[TARGET_RATIO_OUTPUT] = outputs[MEAN_ACTIVATION_OUTPUT] / self.config.sparsity_target
        outputs[HOYER_OUTPUT] = hoyer(latent)
        if self.unit_scale is not None:
            outputs[ACTIVE_UNITS_OUTPUT] = active_units(latent, self.unit_scale)
            zeroed = self._decode(active_only(latent, self.unit_scale), training=False)
            outputs[PSNR_ACTIVE_ONLY_OUTPUT] = psnr_from_mse(mse_per_image(images, zeroed))
            outputs[ZEROING_COST_OUTPUT] = outputs[PSNR_OUTPUT] - outputs[PSNR_ACTIVE_ONLY_OUTPUT]
        if self.baseline_components is not None:
            outputs[LINEAR_PSNR_OUTPUT] = psnr_from_mse(mse_per_image(images, self._linear_reconstruction(images)))
            outputs[GAIN_OUTPUT] = outputs[PSNR_OUTPUT] - outputs[LINEAR_PSNR_OUTPUT]
            if self.active_size is not None:
                at_active = self._linear_reconstruction(images, self.active_size)
                outputs[LINEAR_PSNR_AT_ACTIVE_OUTPUT] = psnr_from_mse(mse_per_image(images, at_active))
                outputs[GAIN_AT_ACTIVE_OUTPUT] = outputs[PSNR_OUTPUT] - outputs[LINEAR_PSNR_AT_ACTIVE_OUTPUT]
        return outputs

    def _linear_reconstruction(self, images: tf.Tensor, code_size: int | None = None) -> tf.Tensor:
        """The PCA reconstruction (LinearBaseline.reconstruct in TensorFlow), with the first code_size
        components (default: all)."""
        assert self.baseline_components is not None  # callers check it
        components = self.baseline_components[:, :code_size]
        flat = tf.reshape(images, (tf.shape(images)[0], -1)) - self.baseline_mean
        restored = tf.matmul(tf.matmul(flat, components), components, transpose_b=True) + self.baseline_mean
        return tf.reshape(tf.clip_by_value(restored, -1.0, 1.0), tf.shape(images))

    def _reconstruct_uint8(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._outputs(scale_images(self._checked_shape(images, RECONSTRUCT_UINT8)))

    def _serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.io.parse_example(examples, example_feature_spec(self.config))[IMAGE_KEY]
        inside = tf.reduce_all(tf.logical_and(pixels >= 0, pixels <= 255))

        def explain():
            return [
                f"{SERVING_DEFAULT}: {IMAGE_KEY} pixels must be integers in [0, 255]; got values from",
                tf.reduce_min(pixels),
                "to",
                tf.reduce_max(pixels),
            ]

        with tf.control_dependencies([_require(inside, explain)]):
            images = tf.reshape(tf.cast(pixels, tf.uint8), (-1, *self.config.image_shape))
        return self._outputs(scale_images(images))


def _untracked(layer: Callable[..., tf.Tensor]) -> Callable[..., tf.Tensor]:
    """layer's call, held in a closure that tf.Module's attribute tracking does not follow."""
    return lambda *args, **kwargs: layer(*args, **kwargs)


def _require(ok: tf.Tensor, explain: Callable[[], list]) -> tf.Tensor:
    """ok, after an assertion that fails with explain()'s message; the message's figures are
    computed only for a refused input (a plain tf.debugging.Assert computes its data every time)."""

    def refuse() -> tf.Tensor:
        with tf.control_dependencies([tf.debugging.Assert(ok, explain())]):
            return tf.identity(ok)

    return tf.cond(ok, lambda: ok, refuse)


def export_saved_model(
    model: SparseAutoencoder,
    export_dir: str,
    baseline: LinearBaseline | None = None,
    code_sparsity: dict | None = None,
) -> str:
    """Write the SavedModel with the three signatures to export_dir; returns export_dir.

    With a baseline, every signature also returns the PCA reconstruction's per-image PSNR and the
    model's gain over it. With code_sparsity (metrics.json's, measured on the eval split) they also
    return each image's active units and the PSNR with only those decoded, and with both, PCA's
    PSNR at the code's active size and the gain over it.
    """
    unit_scale = None if code_sparsity is None else code_sparsity["unit_scale"]
    size = None
    if code_sparsity is not None and baseline is not None:
        size = active_code_size(code_sparsity, baseline.code_size)
    module = ServingModule(model, baseline, unit_scale, size)
    signatures = {
        SERVING_DEFAULT: module.serve_examples.get_concrete_function(),
        RECONSTRUCT: module.reconstruct.get_concrete_function(),
        RECONSTRUCT_UINT8: module.reconstruct_uint8.get_concrete_function(),
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir
