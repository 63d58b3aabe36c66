"""Beam scale-out: ExampleGen and StatisticsGen on DirectRunner with 2 worker processes give the
same examples and statistics as with one in-memory worker."""

import glob
import json
import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.components.statistics_gen.executor import Executor as StatisticsGenExecutor
from tfx.types import standard_artifacts

from components.tfds_example_gen.executor import Executor as ExampleGenExecutor
from pipeline.beam_args import beam_pipeline_args
from pipeline_config import BEAM_RUNNER_TEMPLATES, load_config

ONE_WORKER = BEAM_RUNNER_TEMPLATES["direct_in_memory"]
TWO_WORKERS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def pipeline_beam_args(args: list) -> list:
    """The options the pipeline gives its Beam components for these beam_pipeline_args."""
    return beam_pipeline_args(load_config([f"beam_pipeline_args={','.join(args)}"]))


def run_example_and_statistics_gen(data_dir: str, output: str, beam_args: list) -> dict:
    """Both executors as TFX runs them; returns per split the record count and the statistics."""
    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(output, "examples")
    properties = {
        "dataset": "garment_shapes/small",
        "version": "",
        "data_dir": data_dir,
        "download": 0,
        "split_mapping": json.dumps({"train": "train", "test": "eval"}),
        "image_key": "image",
        "label_key": "label",
    }
    context = dict(beam_pipeline_args=beam_args, tmp_dir=os.path.join(output, "tmp"))
    ExampleGenExecutor(ExampleGenExecutor.Context(**context)).Do({}, {"examples": [examples]}, properties)
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = os.path.join(output, "statistics")
    StatisticsGenExecutor(StatisticsGenExecutor.Context(**context)).Do(
        {"examples": [examples]}, {"statistics": [statistics]}, {"exclude_splits": "[]"}
    )

    result = {}
    for split in ("train", "eval"):
        files = glob.glob(os.path.join(examples.uri, f"Split-{split}", "*.gz"))
        count = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
        with open(os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb"), "rb") as handle:
            stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(handle.read()).datasets[0]
        result[split] = {
            "records": count,
            "num_examples": stats.num_examples,
            "features": {feature.path.step[0]: feature.num_stats for feature in stats.features},
        }
    return result


@pytest.mark.slow  # ExampleGen and StatisticsGen twice, one run with 2 worker processes
def test_two_beam_workers_give_the_same_examples_and_statistics_as_one(garment_data_dir, tmp_path):
    one = run_example_and_statistics_gen(garment_data_dir, str(tmp_path / "one"), pipeline_beam_args(ONE_WORKER))
    two = run_example_and_statistics_gen(garment_data_dir, str(tmp_path / "two"), pipeline_beam_args(TWO_WORKERS))
    assert one["train"]["records"] == two["train"]["records"] == one["train"]["num_examples"] == 2000
    assert one["eval"]["records"] == two["eval"]["records"] == one["eval"]["num_examples"] == 500
    for split in ("train", "eval"):
        assert two[split]["num_examples"] == one[split]["num_examples"]
        assert sorted(two[split]["features"]) == sorted(one[split]["features"]) == ["image", "label"]
        for feature, stats in one[split]["features"].items():
            other = two[split]["features"][feature]
            assert other.common_stats.num_non_missing == stats.common_stats.num_non_missing
            assert other.common_stats.tot_num_values == stats.common_stats.tot_num_values
            assert (other.min, other.max, other.num_zeros) == (stats.min, stats.max, stats.num_zeros)
            # Partial sums combine in another order across workers: equal up to rounding.
            assert other.mean == pytest.approx(stats.mean, rel=1e-9)
            assert other.std_dev == pytest.approx(stats.std_dev, rel=1e-6)


def test_beam_runner_templates_parse_as_beam_options():
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    runners = {
        name: PipelineOptions(args).view_as(StandardOptions).runner for name, args in BEAM_RUNNER_TEMPLATES.items()
    }
    assert runners == {
        "direct_in_memory": None,
        "direct_multi_processing": None,
        "dataflow": "DataflowRunner",
        "flink": "FlinkRunner",
        "spark": "SparkRunner",
    }


def test_direct_runner_components_do_not_build_a_tfx_package(monkeypatch):
    """TFX stages an sdist of itself unless a dependency flag is set; the DirectRunner never needs it."""
    from tfx.utils import dependency_utils

    def no_build():
        raise AssertionError("TFX built its ephemeral package")

    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", no_build)
    for args in (ONE_WORKER, TWO_WORKERS, ["--runner=DirectRunner"]):
        pipeline_args = pipeline_beam_args(args)
        assert pipeline_args[: len(args)] == args
        assert dependency_utils.make_beam_dependency_flags(pipeline_args) == pipeline_args
    dataflow = BEAM_RUNNER_TEMPLATES["dataflow"]
    assert pipeline_beam_args(dataflow) == dataflow  # names its own container image
    flink = BEAM_RUNNER_TEMPLATES["flink"]
    assert pipeline_beam_args(flink) == flink  # not the DirectRunner: TFX stages as it always does
