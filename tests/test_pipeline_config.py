"""The pipeline's one config: nested overrides, validation, derived paths."""

import os

import pytest

from pipeline_config import PipelineConfig, config_keys, load_config
from sparse_ae.errors import ConfigError


def test_defaults_run_fashion_mnist_with_a_gate():
    config = PipelineConfig()
    assert config.dataset.name == "fashion_mnist"
    assert config.dataset.split_mapping == {"train": "train", "test": "eval"}
    gate = config.gate
    assert (gate.psnr_threshold, gate.max_active_units, gate.min_hoyer, gate.max_zeroing_cost) == (20.0, 8.0, 0.7, 0.5)
    assert (gate.min_gain_over_linear, gate.min_gain_over_full_linear, gate.sparsity_tolerance) == (3.0, None, None)
    assert config.enable_cache
    assert config.resolved_metadata_path == os.path.join(config.pipeline_root, "metadata.sqlite")


def test_nested_overrides_reach_the_model_and_the_gate():
    config = load_config(
        [
            "model.sparsity_target=0.02",
            "gate.psnr_threshold=20.5",
            "dataset.name=garment_shapes/small",
            "beam_pipeline_args=--direct_num_workers=2,--direct_running_mode=multi_processing",
        ]
    )
    assert config.model.sparsity_target == 0.02
    assert config.gate.psnr_threshold == 20.5
    assert config.dataset.name == "garment_shapes/small"
    assert config.beam_pipeline_args == ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.sparsity_target=2", "model.sparsity_target=2"),
        ("gate.psnr_threshold=high", "gate.psnr_threshold='high'"),
        ("gate.change_tolerance=-1", "gate.change_tolerance=-1"),
        ('dataset.split_mapping={"train": "train"}', "must map one TFDS split to 'train' and one to 'eval'"),
        ("pipeline_name=has space", "pipeline_name='has space'"),
        ("steps_per_epoch=0", "steps_per_epoch=0"),
        ("modle.latent_dim=3", "unknown key 'modle'"),
        ("evaluation.engine=fast", "evaluation.engine='fast'"),
    ],
)
def test_bad_values_are_one_line_errors(override, fragment):
    with pytest.raises(ConfigError) as caught:
        load_config([override])
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_the_evaluation_engine_is_batched_unless_set():
    assert PipelineConfig().evaluation.engine == "batched"
    assert load_config(["evaluation.engine=tfma"]).evaluation.engine == "tfma"


def test_absolute_paths_for_components():
    config = load_config(["pipeline_root=rel/root", "dataset.data_dir=rel/tfds"]).absolute()
    assert os.path.isabs(config.pipeline_root) and os.path.isabs(config.serving_dir)
    assert os.path.isabs(config.dataset.data_dir)


def test_every_key_is_listed():
    keys = config_keys()
    assert {"model.sparsity_target", "gate.psnr_threshold", "dataset.data_dir", "beam_pipeline_args"} <= set(keys)


def test_settings_for_running_at_scale():
    config = PipelineConfig()
    assert config.beam_pipeline_args is None  # chosen per run (pipeline/beam_args.py, tests/test_beam_mode.py)
    assert config.model.distribution_strategy == "default" and config.airflow.schedule == "@daily"
    config = load_config(
        [
            "pipeline_root=gs://bucket/root",
            "serving_dir=rel/serving",
            "airflow.schedule=none",
            "airflow.start_date=2026-03-01",
            "beam_pipeline_args=--runner=DataflowRunner",
            "model.distribution_strategy=mirrored",
        ]
    ).absolute()
    assert config.pipeline_root == "gs://bucket/root" and os.path.isabs(config.serving_dir)  # URIs stay as they are
    assert config.airflow.schedule is None and str(config.airflow.start_date) == "2026-03-01"
    assert config.beam_pipeline_args == ["--runner=DataflowRunner"]
    assert config.model.distribution_strategy == "mirrored"
    with pytest.raises(ConfigError, match="distribution_strategy"):
        load_config(["model.distribution_strategy=horovod"])
