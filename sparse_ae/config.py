"""Typed, validated hyperparameters of the sparse autoencoder, and device visibility."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from typing import Any, Literal, TypeVar

import pydantic
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field

from sparse_ae.errors import ConfigError

DEFAULT_IMAGE_SHAPE = (28, 28, 1)  # height, width, channels: the garment and Fashion-MNIST images


class StrictModel(BaseModel):
    """Base for all configs: unknown keys are errors, instances are immutable."""

    # allow_inf_nan=False: "nan" or "inf" would pass every bound (a NaN threshold never blesses).
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


class SparseAEConfig(StrictModel):
    """Everything that shapes the model, its training and its input data.

    Sizes and sparsity target follow the seed (latent 64, hidden (256, 128), sparsity_target 0.05);
    the recipe (elu layers with batch normalization, sparsity_weight 0.01, Adam at 5e-3 with a
    cosine decay over 15 epochs) and the code (batch normalization on the latent pre-activations,
    relu, the 6 largest units of each image kept) were chosen by measured sweeps
    (docs/model-defaults.md). The seed's own settings are the `seed` preset (sparse_ae/presets.py).
    """

    image_shape: tuple[int, int, int] = Field(
        DEFAULT_IMAGE_SHAPE, description="Height, width, channels of the images; each > 0."
    )
    hidden_dims: tuple[int, ...] = Field(
        (256, 128), min_length=1, description="Encoder layer widths, each > 0; the decoder mirrors them."
    )
    latent_dim: int = Field(64, gt=0, description="Size of the latent code.")
    latent_activation: Literal["sigmoid", "relu"] = Field(
        "relu",
        description="sigmoid: KL on the batch-mean activation; relu: KL on tanh of it (docs/model-library.md).",
    )
    encoder_activation: Literal["sigmoid", "relu", "tanh", "elu"] = Field(
        "elu", description="Activation of encoder hidden layers."
    )
    decoder_activation: Literal["sigmoid", "relu", "tanh", "elu"] = Field(
        "elu", description="Activation of decoder hidden layers."
    )
    latent_top_k: int | None = Field(
        6,
        gt=0,
        description="Keep only the k largest latent units of each image and zero the rest (TopK, Makhzani & Frey "
        "2013), so that at most k units are on per image; none: every unit (a dense code).",
    )
    latent_batch_norm: bool = Field(
        True,
        description="Batch normalization on the latent pre-activations: every unit keeps a spread of values, so "
        "with latent_top_k each one wins on some images (no dead units).",
    )
    sparsity_target: float = Field(0.05, gt=0.0, lt=1.0, description="Target mean activation of each latent unit.")
    sparsity_weight: float = Field(0.01, ge=0.0, description="Weight of the KL sparsity penalty in the loss.")
    batch_norm: bool = Field(
        True, description="Batch normalization between each hidden Dense layer and its activation."
    )
    kernel_initializer: Literal["glorot_uniform", "he_normal", "lecun_normal"] = Field(
        "he_normal", description="Initial weights of every Dense layer (he_normal suits elu/relu layers)."
    )
    learning_rate: float = Field(5e-3, gt=0.0, description="Adam learning rate (the peak one under a schedule).")
    learning_rate_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="constant, or cosine: decay per epoch from learning_rate to 0 over `epochs`."
    )
    early_stopping_patience: int | None = Field(
        None,
        gt=0,
        description="Stop after this many epochs without a lower val_loss; none: run every epoch. The best "
        "epoch's weights are kept either way.",
    )
    batch_size: int = Field(256, gt=0, description="Examples per training step.")
    epochs: int = Field(15, gt=0, description="Training epochs (the most, with early stopping).")
    shuffle_buffer: int = Field(10_000, ge=0, description="Shuffle buffer size (0 disables shuffling).")
    noise_stddev: float = Field(
        0.0, ge=0.0, description="Denoising: Gaussian noise stddev added to inputs (in [-1, 1] units)."
    )
    mask_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Denoising: fraction of input pixels set to the background (-1) at random.",
    )
    seed: int = Field(42, ge=0, description="Seed for weights, shuffling and corruption.")
    visible_gpus: tuple[int, ...] | None = Field(None, description="GPU indices to use; none: all, []: CPU only.")
    gpu_memory_growth: bool = Field(True, description="Allocate GPU memory as needed instead of all at once.")
    distribution_strategy: Literal["default", "mirrored", "multi_worker_mirrored"] = Field(
        "default",
        description="tf.distribute strategy: one device, all local devices, or workers named by TF_CONFIG.",
    )

    @pydantic.field_validator("hidden_dims", "image_shape", "visible_gpus", mode="before")
    @classmethod
    def _scalar_to_tuple(cls, value: Any) -> Any:
        """Let `--set hidden_dims=128` mean (128,)."""
        return (value,) if isinstance(value, (int, str)) else value

    @pydantic.field_validator("hidden_dims", "image_shape")
    @classmethod
    def _positive_sizes(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if any(size <= 0 for size in sizes):
            raise ValueError("every size must be > 0")
        return sizes

    @pydantic.model_validator(mode="after")
    def _top_k_within_code(self) -> SparseAEConfig:
        if self.latent_top_k is not None and self.latent_top_k > self.latent_dim:
            raise ValueError(
                f"latent_top_k={self.latent_top_k} exceeds latent_dim={self.latent_dim}: at most latent_dim units "
                "can be kept per image"
            )
        return self

    @property
    def denoising(self) -> bool:
        return self.noise_stddev > 0 or self.mask_fraction > 0


class DatasetConfig(StrictModel):
    """Which TFDS dataset to read (the pipeline's ExampleGen and the library's commands alike), and
    which TFDS split is for training ('train') and which for evaluation ('eval')."""

    name: str = Field("fashion_mnist", min_length=1, description="TFDS name[/config], e.g. garment_shapes/full.")
    version: str = Field("", description="TFDS version, e.g. 3.0.1; empty for the builder's default.")
    data_dir: str | None = Field(
        None,
        description="TFDS data_dir with the prepared datasets (the air-gapped path); none: TFDS's default "
        "(~/tensorflow_datasets).",
    )
    split_mapping: dict[str, str] = Field(
        {"train": "train", "test": "eval"},
        description="TFDS split -> TFX split; the values must be exactly 'train' and 'eval'.",
    )
    download: bool = Field(True, description="Prepare the dataset when absent; false never touches the network.")

    @pydantic.field_validator("split_mapping")
    @classmethod
    def _train_and_eval(cls, mapping: dict[str, str]) -> dict[str, str]:
        if sorted(mapping.values()) != ["eval", "train"]:
            raise ValueError("must map one TFDS split to 'train' and one to 'eval'")
        return mapping

    @property
    def tfds_name(self) -> str:
        """name[/config][:version], what TFDS's builder takes."""
        return f"{self.name}:{self.version}" if self.version else self.name

    def split_for(self, role: str) -> str:
        """The TFDS split mapped to 'train' or 'eval'."""
        return next(split for split, mapped in self.split_mapping.items() if mapped == role)


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def _allowed(model: type[BaseModel], field: str) -> str:
    """Describe a field's allowed values from its annotation and bounds."""
    info = model.model_fields.get(field)
    if info is None:
        return "known keys: " + ", ".join(sorted(model.model_fields))
    bounds = []
    for item in info.metadata:
        for kind, attribute, symbol in ((Gt, "gt", ">"), (Ge, "ge", ">="), (Lt, "lt", "<"), (Le, "le", "<=")):
            if isinstance(item, kind):
                bounds.append(f"{symbol} {getattr(item, attribute)}")
    annotation = info.annotation
    name = annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")
    return f"{name}" + (f", {' and '.join(bounds)}" if bounds else "")


def _locate(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel], str]:
    """Follow a pydantic error location through nested configs to (model class, field)."""
    current: type[BaseModel] = model
    for part in loc[:-1]:
        info = current.model_fields.get(str(part))
        nested = getattr(info, "annotation", None) if info else None
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            current = nested
        else:
            return current, str(part)
    return current, str(loc[-1]) if loc else ""


def _sections_with(model: type[BaseModel], field: str) -> list[str]:
    """The nested sections of model that have a key named field (`sparsity_target` -> ['model'])."""
    return [
        name
        for name, info in model.model_fields.items()
        if isinstance(info.annotation, type)
        and issubclass(info.annotation, BaseModel)
        and field in info.annotation.model_fields
    ]


def validation_error_message(model: type[BaseModel], error: pydantic.ValidationError) -> str:
    """One line per problem: key=value: what is wrong (allowed: ...)."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"] if not isinstance(part, int)) or "<config>"
        owner, field = _locate(model, tuple(p for p in item["loc"] if not isinstance(p, int)))
        if item["type"] == "extra_forbidden":
            hint = "".join(f"did you mean {section}.{field}? " for section in _sections_with(owner, field))
            lines.append(f"unknown key {key!r} ({hint}{_allowed(owner, '__unknown__')})")
            continue
        if not item["loc"]:  # a check across keys (conflicting settings) names them in its own words
            lines.append(str(item["msg"]).removeprefix("Value error, "))
            continue
        value = item.get("input")
        lines.append(f"{key}={value!r}: {item['msg']} (allowed: {_allowed(owner, field)})")
    return "; ".join(lines)


def build_config(model: type[ConfigT], values: dict[str, Any]) -> ConfigT:
    """Validate a dictionary into a config, raising ConfigError with a one-line message."""
    try:
        return model.model_validate(values)
    except pydantic.ValidationError as error:
        raise ConfigError(validation_error_message(model, error)) from None


def parse_value(text: str) -> Any:
    """Read a --set value: JSON when it parses ('0.02', 'true', '[1,2]'), comma lists, else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if text.lower() in ("none", "null"):
        return None
    if "," in text:
        return [parse_value(part.strip()) for part in text.split(",") if part.strip()]
    return text


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """Turn ['a.b=1', 'c=x'] into a nested dictionary {'a': {'b': 1}, 'c': 'x'}."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected key=value")
        target = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {pair!r}: {part!r} is both a value and a section")
        target[parts[-1]] = parse_value(text.strip())
    return result


def add_set_argument(parser: argparse.ArgumentParser, example: str) -> None:
    """The repeatable `--set KEY=VALUE` option every command reads its config overrides from."""
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help=f"config override, repeatable; nested keys dotted, e.g. {example}",
    )


def command_overrides(args: argparse.Namespace, aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """A command's overrides as a nested dictionary: its alias flags (flag dest -> dotted key, e.g.
    {"dataset": "dataset.name"}) first, then its --set pairs, which win."""
    values: dict[str, Any] = {}
    for dest, key in (aliases or {}).items():
        value = getattr(args, dest, None)
        if value is not None:  # taken as given: a flag's value is never parsed as JSON or a list
            *sections, name = key.split(".")
            target = values
            for section in sections:
                target = target.setdefault(section, {})
            target[name] = value
    return merge(values, parse_overrides(getattr(args, "set", None) or []))


def config_from_args(
    model: type[ConfigT],
    args: argparse.Namespace,
    aliases: dict[str, str] | None = None,
    base: dict[str, Any] | None = None,
    workspace: bool = False,
) -> ConfigT:
    """The config a command runs with: defaults, then base (a preset), then (workspace=True) the
    project folder's settings file (sparse_ae/workspace.py), then its flags and --set overrides;
    validated (ConfigError with a one-line message)."""
    values = dict(base or {})
    if workspace:
        from sparse_ae.workspace import settings_defaults

        values = merge(values, settings_defaults(model))
    return build_config(model, merge(values, command_overrides(args, aliases)))


def merge(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge updates into a copy of base (nested dictionaries merge, other values replace)."""
    merged = dict(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def with_overrides(config: ConfigT, pairs: Iterable[str]) -> ConfigT:
    """A copy of config with --set key=value overrides applied and validated."""
    return build_config(type(config), merge(config.model_dump(), parse_overrides(pairs)))


def configure_devices(config: SparseAEConfig) -> None:
    """Apply the config's GPU visibility and memory growth; must run before TensorFlow uses a device."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if config.visible_gpus is not None:
        missing = [index for index in config.visible_gpus if index >= len(gpus)]
        if missing:
            raise ConfigError(
                f"visible_gpus={list(config.visible_gpus)!r}: GPU(s) {missing} not present "
                f"(this machine has {len(gpus)}; use [] for CPU only)"
            )
        gpus = [gpus[index] for index in config.visible_gpus]
        tf.config.set_visible_devices(gpus, "GPU")
    if config.gpu_memory_growth:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
