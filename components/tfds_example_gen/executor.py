"""Executor of TFDSExampleGen: a Beam pipeline per split, read shard by shard and checked (checks.py),
each TFDS shard written as one gzipped TFRecord file of tf.Examples."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx_bsl.public.tfxio import RecordBatchToExamplesEncoder

from components.tfds_example_gen.checks import ERRORS, ShardReader, check_declared, raise_data_errors
from sparse_ae import datasets as _registered_datasets  # noqa: F401  (registers garment_shapes)
from sparse_ae.data import tfds_builder

# TFDS reads batches of this many examples; conversion works on whole batches.
_READ_BATCH = 1024
_FILE_PREFIX = "data_tfrecord"
_ERRORS_FOLDER = ".data_errors"  # the readers' messages, read back and removed once Beam is done
# gzip's fastest level: on these examples (int64 pixels) it makes files 5% larger than Beam's
# WriteToTFRecord (level 6) and compresses in 45% of the time.
_COMPRESSION_LEVEL = 1
_ENCODER = RecordBatchToExamplesEncoder()  # stateless; pickles by its schema (None)


def batch_to_examples(batch: dict[str, np.ndarray], image_key: str, label_key: str) -> list[bytes]:
    """Serialized tf.Examples of one TFDS batch: image flattened to int64s, label as int64.

    int64 lists rather than encoded bytes: StatisticsGen and ExampleValidator then see pixel
    values (range, presence, shape), gzip keeps files small, and TFXIO parses them fastest.
    The batch becomes one Arrow RecordBatch (no copy per example) that tfx_bsl's C++ encoder,
    the one TFX's own ExampleGens use, turns into serialized tf.Examples. The checks in
    checks.py have already made every pixel a whole number in [0, 255], so int64 is exact.
    """
    images = np.asarray(batch[image_key])
    count = len(images)
    pixels = images.reshape(count, -1).astype(np.int64)
    labels = np.asarray(batch[label_key]).astype(np.int64).reshape(count, -1)
    columns = {
        key: pa.ListArray.from_arrays(
            pa.array(np.arange(0, values.size + 1, values.shape[1], dtype=np.int32)),
            pa.array(values.reshape(-1)),
        )
        for key, values in ((image_key, pixels), (label_key, labels))
    }
    return _ENCODER.encode(pa.RecordBatch.from_arrays(list(columns.values()), list(columns.keys())))


class ShardWriter:
    """Writes the checked examples of one TFDS shard to one gzipped TFRecord file of its TFX split:
    `<split uri>/data_tfrecord-<index>-of-<count>.gz`, the names Beam's TFRecord sink gives.

    One file per TFDS shard rather than Beam's WriteToTFRecord: that sink handles (and compresses)
    every record as a Beam element of its own, about half of ExampleGen's time in a profile; here
    each batch is encoded at once and written by TensorFlow's C++ writer, outside Beam's
    per-element machinery (docs/benchmarks.md, "One-off measurements"). The names are fixed by the shard's
    index, so a retried bundle rewrites its own file; a shard that breaks the data contract
    leaves no file behind.
    """

    def __init__(self, reader: ShardReader, split_uri: str, shard_count: int, image_key: str, label_key: str):
        self.reader, self.split_uri, self.shard_count = reader, split_uri, shard_count
        self.image_key, self.label_key = image_key, label_key

    def __call__(self, indexed_instruction) -> Iterator[beam.pvalue.TaggedOutput]:
        """Writes the shard; yields only the reader's error message, tagged ERRORS, if it has one."""
        index, instruction = indexed_instruction
        path = os.path.join(self.split_uri, f"{_FILE_PREFIX}-{index:05d}-of-{self.shard_count:05d}.gz")
        options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=_COMPRESSION_LEVEL)
        error = None
        try:
            with tf.io.TFRecordWriter(path, options) as writer:
                for batch in self.reader(instruction):
                    if isinstance(batch, beam.pvalue.TaggedOutput):
                        error = batch
                        break
                    for record in batch_to_examples(batch, self.image_key, self.label_key):
                        writer.write(record)
        except BaseException:
            _remove(path)
            raise
        if error is not None:
            _remove(path)
            yield error


def _remove(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


class Executor(base_beam_executor.BaseBeamExecutor):
    """Writes `<examples.uri>/Split-<tfx split>/data_tfrecord-*.gz` for each mapped TFDS split."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        mapping: dict[str, str] = json.loads(exec_properties["split_mapping"])
        name = exec_properties["dataset"]
        if exec_properties.get("version"):
            name = f"{name}:{exec_properties['version']}"
        builder = tfds_builder(
            name,
            data_dir=exec_properties.get("data_dir") or None,
            download=bool(exec_properties.get("download", 1)),
        )
        missing = sorted({split.split("[")[0] for split in mapping} - set(builder.info.splits.keys()))
        if missing:
            raise ValueError(f"dataset {name!r} has no split(s) {missing}; it has {sorted(builder.info.splits.keys())}")
        image_key, label_key = exec_properties["image_key"], exec_properties["label_key"]
        image_shape = json.loads(exec_properties.get("image_shape") or "null")
        expected_shape = check_declared(builder, mapping, image_key, label_key, image_shape)

        examples = artifact_utils.get_single_instance(output_dict["examples"])
        examples.split_names = artifact_utils.encode_split_names(list(mapping.values()))
        examples.set_string_custom_property("tfds_name", builder.name)
        examples.set_string_custom_property(
            "tfds_config", builder.builder_config.name if builder.builder_config else ""
        )
        examples.set_string_custom_property("tfds_version", str(builder.version))
        examples.set_string_custom_property("tfds_data_dir", str(builder.data_dir))
        label_feature = builder.info.features[label_key] if label_key in builder.info.features else None
        examples.set_string_custom_property("label_names", json.dumps(list(getattr(label_feature, "names", []))))

        errors_folder = os.path.join(examples.uri, _ERRORS_FOLDER)  # on storage every Beam worker sees
        with self._make_beam_pipeline() as pipeline:
            errors = []
            for tfds_split, tfx_split in mapping.items():
                reader = ShardReader(builder, tfds_split, tfx_split, image_key, label_key, expected_shape, _READ_BATCH)
                shards = builder.info.splits[tfds_split].file_instructions
                split_uri = artifact_utils.get_split_uri([examples], tfx_split)
                tf.io.gfile.makedirs(split_uri)
                writer = ShardWriter(reader, split_uri, len(shards), image_key, label_key)
                written = (
                    pipeline
                    | f"Shards[{tfx_split}]" >> beam.Create(list(enumerate(shards)))
                    | f"Write[{tfx_split}]" >> beam.FlatMap(writer).with_outputs(ERRORS, main="written")
                )
                errors.append(written[ERRORS])
            _ = (
                tuple(errors)
                | "DataErrors" >> beam.Flatten()
                | "WriteDataErrors" >> beam.io.WriteToText(os.path.join(errors_folder, "errors"))
            )
        raise_data_errors(errors_folder)
