"""TFDSExampleGen: a Beam component whose identity (dataset, version, split mapping) is its parameters.

It has no input artifacts, so everything that identifies the data must be an execution
parameter: TFX's cache then reuses examples only for the very same dataset (tfx#3646). It needs
no custom driver, so it compiles for Kubeflow V2 too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.tfds_example_gen import executor

DEFAULT_SPLIT_MAPPING = {"train": "train", "test": "eval"}


class TFDSExampleGenSpec(types.ComponentSpec):
    """Parameters: TFDS name[/config], version, data_dir, split mapping, download, feature keys, image shape.
    Each is part of TFX's cache key: nothing here describes the machine a run is on."""

    PARAMETERS = {
        "dataset": ExecutionParameter(type=str),
        "version": ExecutionParameter(type=str),
        "data_dir": ExecutionParameter(type=str),
        "split_mapping": ExecutionParameter(type=str),  # JSON {tfds_split: tfx_split}
        "download": ExecutionParameter(type=int),
        "image_key": ExecutionParameter(type=str),
        "label_key": ExecutionParameter(type=str),
        "image_shape": ExecutionParameter(type=str),  # JSON [H, W, C] every image must have; "" for the declared one
    }
    INPUTS = {}
    OUTPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples)}


class TFDSExampleGen(base_beam_component.BaseBeamComponent):
    """Reads a TFDS image dataset and writes one gzipped tf.Example TFRecord folder per split.

    Each record holds the image flattened to an int64 list (`image_key`) and the label
    (`label_key`). Data that breaks the contract in checks.py (unreadable or short shards, empty
    splits, images not of `image_shape`, pixels outside 0..255, labels outside the classes) fails
    the component with a DataValidationError naming the split, shard and record.
    """

    SPEC_CLASS = TFDSExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        dataset: str,
        version: str = "",
        data_dir: str | None = None,
        split_mapping: Mapping[str, str] | None = None,
        download: bool = True,
        image_key: str = "image",
        label_key: str = "label",
        image_shape: Sequence[int] | None = None,
    ):
        mapping = dict(split_mapping or DEFAULT_SPLIT_MAPPING)
        if not mapping or len(set(mapping.values())) != len(mapping):
            raise ValueError(f"split_mapping {mapping!r}: needs at least one split and distinct TFX split names")
        spec = TFDSExampleGenSpec(
            dataset=dataset,
            version=version or "",
            data_dir=data_dir or "",
            split_mapping=json.dumps(mapping, sort_keys=True),
            download=int(download),
            image_key=image_key,
            label_key=label_key,
            image_shape=json.dumps([int(size) for size in image_shape]) if image_shape else "",
            examples=types.Channel(type=standard_artifacts.Examples),
        )
        super().__init__(spec=spec)
