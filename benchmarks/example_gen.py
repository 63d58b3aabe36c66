"""ExampleGen throughput: TFDSExampleGen's executor (Beam, DirectRunner) from a prepared TFDS dataset
to its gzipped tf.Example output, against a plain tf.data read, convert and write of the same
records in this process."""

from __future__ import annotations

import json
import os
import tempfile
import time

import tensorflow as tf
from tfx.types import standard_artifacts

from benchmarks.common import IN_MEMORY_BEAM, safe_ratio
from components.tfds_example_gen.executor import Executor
from sparse_ae.data import tfds_builder


def plain_examples(batch: dict) -> list:
    """What a user writes without this project: one tf.train.Example per image."""
    return [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    "image": tf.train.Feature(int64_list=tf.train.Int64List(value=image.reshape(-1).astype("int64"))),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                }
            )
        ).SerializeToString()
        for image, label in zip(batch["image"], batch["label"], strict=False)
    ]


def baseline_seconds(name: str, data_dir: str | None, output: str) -> float:
    """Read both splits with tf.data, build tf.train.Examples, write gzipped TFRecords."""
    import tensorflow_datasets as tfds

    started = time.perf_counter()
    builder = tfds_builder(name, data_dir=data_dir, download=False)
    for split in ("train", "test"):
        with tf.io.TFRecordWriter(os.path.join(output, f"{split}.gz"), options="GZIP") as writer:
            for batch in tfds.as_numpy(builder.as_dataset(split=split, batch_size=1024)):
                for record in plain_examples(batch):
                    writer.write(record)
    return time.perf_counter() - started


def ours_seconds(name: str, data_dir: str | None, output: str, beam_args: list) -> float:
    examples = standard_artifacts.Examples()
    examples.uri = output
    properties = {
        "dataset": name,
        "version": "",
        "data_dir": data_dir or "",
        "download": 0,
        "split_mapping": json.dumps({"train": "train", "test": "eval"}),
        "image_key": "image",
        "label_key": "label",
    }
    started = time.perf_counter()
    Executor(Executor.Context(beam_pipeline_args=beam_args)).Do({}, {"examples": [examples]}, properties)
    return time.perf_counter() - started


def run(
    data_dir: str | None,
    dataset: str = "garment_shapes/full",
    beam_args: tuple = IN_MEMORY_BEAM,
) -> dict:
    builder = tfds_builder(dataset, data_dir=data_dir, download=True)
    count = sum(builder.info.splits[split].num_examples for split in ("train", "test"))
    with tempfile.TemporaryDirectory() as work:
        os.makedirs(os.path.join(work, "baseline"))
        baseline = baseline_seconds(dataset, data_dir, os.path.join(work, "baseline"))
        ours = ours_seconds(dataset, data_dir, os.path.join(work, "ours"), list(beam_args))
    return {
        "description": "examples/s from a prepared TFDS dataset to gzipped tf.Example TFRecords",
        "sizes": {"dataset": dataset, "examples": count, "beam_pipeline_args": list(beam_args)},
        "ours": {"name": "TFDSExampleGen executor (Beam)", "seconds": ours, "examples_per_s": count / ours},
        "baseline": {
            "name": "tf.data read + convert + TFRecordWriter",
            "seconds": baseline,
            "examples_per_s": count / baseline,
        },
        "ratio": safe_ratio(baseline, ours),  # None: not measurable
        "goal": ">= 0.5",
    }
