"""Executor of TFDSExampleGen: a Beam pipeline per split, read shard by shard and checked (checks.py)."""

from __future__ import annotations

import json
import os
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
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
                read = (
                    pipeline
                    | f"Shards[{tfx_split}]" >> beam.Create(builder.info.splits[tfds_split].file_instructions)
                    | f"Read[{tfx_split}]" >> beam.FlatMap(reader).with_outputs(ERRORS, main="batches")
                )
                _ = (
                    read.batches
                    | f"ToExamples[{tfx_split}]" >> beam.FlatMap(batch_to_examples, image_key, label_key)
                    | f"Write[{tfx_split}]"
                    >> beam.io.WriteToTFRecord(
                        os.path.join(artifact_utils.get_split_uri([examples], tfx_split), _FILE_PREFIX),
                        file_name_suffix=".gz",
                    )
                )
                errors.append(read[ERRORS])
            _ = (
                tuple(errors)
                | "DataErrors" >> beam.Flatten()
                | "WriteDataErrors" >> beam.io.WriteToText(os.path.join(errors_folder, "errors"))
            )
        raise_data_errors(errors_folder)
