"""The DirectRunner mode chosen for the data and the machine, and beam_pipeline_args overriding it."""

import pytest

from pipeline.beam_args import (
    BeamMode,
    beam_mode,
    beam_pipeline_args,
    break_even_examples,
    choose_direct_mode,
    prepared_size,
)
from pipeline_config import BEAM_RUNNER_TEMPLATES, load_config

IN_MEMORY, MULTI = BEAM_RUNNER_TEMPLATES["direct_in_memory"], BEAM_RUNNER_TEMPLATES["direct_multi_processing"]


@pytest.mark.parametrize(
    "examples, cores, mode",
    [
        (2_500, 2, "in_memory"),  # garment_shapes/small: worker start-ups would dominate
        (2_500, 64, "in_memory"),  # small data stays in memory however many cores
        (70_000, 2, "in_memory"),  # Fashion-MNIST size on 2 cores: at most half the work to gain
        (10_000_000, 2, "multi_processing"),
        (10_000_000, 1, "in_memory"),  # one core: nothing to run in parallel
        (None, 16, "in_memory"),  # not prepared yet: the stated fallback
        (None, None, "in_memory"),  # os.cpu_count() may be None
    ],
)
def test_mode_follows_dataset_size_and_cores(examples, cores, mode):
    chosen = choose_direct_mode(examples, cores)
    assert chosen.mode == mode and chosen.args == (IN_MEMORY if mode == "in_memory" else MULTI)
    assert chosen.reason.startswith("chosen: ")


@pytest.mark.parametrize("cores", [2, 4, 16, 64])
def test_multi_processing_from_the_break_even_on(cores):
    threshold = break_even_examples(cores)
    assert choose_direct_mode(threshold - 1, cores).mode == "in_memory"
    assert choose_direct_mode(threshold, cores).mode == "multi_processing"


def test_break_even_falls_with_more_cores():
    assert break_even_examples(1) is None
    assert break_even_examples(2) > break_even_examples(4) > break_even_examples(64) > 2_500


def test_reason_names_the_figures_behind_the_choice():
    chosen = choose_direct_mode(10_000_000, 16)
    assert f"10,000,000 examples >= {break_even_examples(16):,}" in chosen.reason and "16 cores" in chosen.reason
    assert "unknown" in choose_direct_mode(None, 8).reason


def test_prepared_dataset_size_decides(garment_data_dir):
    config = load_config(["dataset.name=garment_shapes/small", f"dataset.data_dir={garment_data_dir}"])
    assert config.beam_pipeline_args is None  # the default: choose
    assert prepared_size(config.dataset) == 2_500
    mode = beam_mode(config, cores=2)
    assert mode == BeamMode(
        IN_MEMORY, "in_memory", f"chosen: 2,500 examples < {break_even_examples(2):,}, the break-even on 2 cores"
    )
    assert beam_pipeline_args(config, mode) == IN_MEMORY + [
        "--runner=FnApiRunner",
        "--sdk_container_image=sparse-ae-tfx:latest",
    ]
    sliced = load_config(
        [
            "dataset.name=garment_shapes/small",
            f"dataset.data_dir={garment_data_dir}",
            'dataset.split_mapping={"train[:300]": "train", "test": "eval"}',
        ]
    )
    assert prepared_size(sliced.dataset) == 800


def test_unknown_size_when_not_prepared(tmp_path):
    config = load_config([f"dataset.data_dir={tmp_path}"])  # fashion_mnist, nothing prepared there
    assert prepared_size(config.dataset) is None
    assert beam_mode(config, cores=32).mode == "in_memory"
    assert prepared_size(load_config(["dataset.data_dir=gs://bucket/tfds"]).dataset) is None  # never read here


@pytest.mark.parametrize(
    "args, mode",
    [
        (MULTI, "multi_processing"),
        (["--direct_num_workers=2", "--direct_running_mode=multi_processing"], "multi_processing"),
        (["--direct_num_workers=1"], "in_memory"),  # Beam's default running mode
        (["--runner=DataflowRunner", "--project=p"], "DataflowRunner"),
    ],
)
def test_explicit_beam_pipeline_args_override_the_choice(garment_data_dir, args, mode):
    config = load_config(
        [
            "dataset.name=garment_shapes/small",
            f"dataset.data_dir={garment_data_dir}",
            "beam_pipeline_args=" + ",".join(args),
        ]
    )
    chosen = beam_mode(config, cores=2)  # the choice would be in_memory
    assert chosen == BeamMode(args, mode, "set by beam_pipeline_args")
    assert beam_pipeline_args(config)[: len(args)] == args


def test_the_local_runner_is_named_so_beam_never_swaps_in_prism(garment_data_dir):
    """Unnamed, Beam's DirectRunner would try Prism first and ignore the chosen mode."""
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

    def runner_and_mode(*overrides: str) -> tuple:
        options = PipelineOptions(beam_pipeline_args(load_config(["dataset.name=garment_shapes/small", *overrides])))
        return options.view_as(StandardOptions).runner, options.view_as(DirectOptions).direct_running_mode

    assert runner_and_mode(f"dataset.data_dir={garment_data_dir}") == ("FnApiRunner", "in_memory")
    assert runner_and_mode("beam_pipeline_args=" + ",".join(MULTI)) == ("FnApiRunner", "multi_processing")
    assert runner_and_mode("beam_pipeline_args=--runner=DirectRunner")[0] == "DirectRunner"  # named: kept


@pytest.mark.parametrize("text", ["none", "auto"])
def test_none_or_auto_means_choose(text):
    assert load_config([f"beam_pipeline_args={text}"]).beam_pipeline_args is None
