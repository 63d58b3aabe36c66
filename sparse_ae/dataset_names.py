"""A TFDS dataset name[/config], checked against TFDS's registered builders before any work.

TFDS's own errors for a misspelt name print its whole catalogue (hundreds of lines), and for a
misspelt config a traceback; the command line checks the name first and says what is wrong in
one line, with a short "did you mean" from the registered builders' names and the builder's configs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from sparse_ae.errors import ConfigError


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """ " (did you mean X?)" with the closest of choices, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def check_dataset_name(name: str, data_dir: str | None = None) -> None:
    """ConfigError (one line) unless name (name[/config][:version]) is a registered TFDS builder and,
    when given, one of its configs, or a dataset prepared in data_dir without its code (TFDS reads it
    from its files).

    A namespaced community dataset (`namespace:name`) is left to TFDS, which resolves it online.
    """
    builder_name, _, config_name = re.sub(r":[0-9.*]+$", "", name).partition("/")
    if ":" in builder_name:
        return
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.utils.file_utils import list_data_dirs

    from sparse_ae.datasets import garment_shapes  # noqa: F401  (registers the project's builder with TFDS)

    builders = tfds.list_builders(with_community_datasets=False)
    if builder_name not in builders and any(
        tf.io.gfile.isdir(f"{folder}/{builder_name}") for folder in list_data_dirs(data_dir)
    ):
        return  # prepared elsewhere and copied here: TFDS builds it from the files
    if builder_name not in builders:
        raise ConfigError(
            f"dataset.name={name!r}: no TFDS dataset named {builder_name!r}{did_you_mean(builder_name, builders)}"
        )
    configs = [config.name for config in tfds.builder_cls(builder_name).BUILDER_CONFIGS]
    if config_name and config_name not in configs:
        hint = did_you_mean(config_name, configs) or (
            f" (its configs: {', '.join(configs)})" if configs else " (it has no configs)"
        )
        raise ConfigError(f"dataset.name={name!r}: TFDS dataset {builder_name} has no config {config_name!r}{hint}")
