"""The DirectRunner mode chosen for the data and the machine, and beam_pipeline_args overriding it."""

import os
import shutil

import pytest

from pipeline.beam_args import (
    BeamMode,
    beam_mode,
    beam_pipeline_args,
    break_even_examples,
    choose_direct_mode,
    local_beam_pipeline_args,
    mode_environment,
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
    assert beam_pipeline_args(config) == ["--runner=FnApiRunner", "--sdk_container_image=sparse-ae-tfx:latest"]
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
    assert mode_environment(chosen) == {}  # nothing chosen at run time
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


def _as_machine(monkeypatch, cores: int) -> None:
    """This process as a machine with `cores` cores (what beam_mode counts)."""
    monkeypatch.setattr(os, "cpu_count", lambda: cores)


def test_a_compiled_spec_is_the_same_on_any_machine(tmp_path, garment_data_dir, monkeypatch):
    """Kubeflow V2 specs compiled on a 2-core machine before the dataset is prepared and on a 64-core
    machine after: byte for byte the same (the Beam mode is chosen where a local run starts)."""
    from pipeline.kubeflow_runner import compile_kubeflow

    data_dir = tmp_path / "tfds"
    config = load_config(
        ["dataset.name=garment_shapes/small", f"dataset.data_dir={data_dir}", "pipeline_root=gs://b/r"]
    )
    specs = []
    for cores, prepared in ((2, False), (64, True)):
        _as_machine(monkeypatch, cores)
        if prepared:
            shutil.copytree(garment_data_dir, data_dir, dirs_exist_ok=True)
        assert (prepared_size(config.dataset) is not None) == prepared
        path = compile_kubeflow(config, str(tmp_path / f"spec-{cores}.json"), allow_local=True)
        specs.append(open(path, "rb").read())
    assert specs[0] == specs[1]
    assert b"in_memory" not in specs[0] and b"cores" not in specs[0]


def _local_executor_specs(config) -> dict:
    """node id -> the executor spec LocalDagRunner hands each node's launcher (part of its cache key)."""
    from tfx.dsl.compiler import compiler
    from tfx.orchestration.local import runner_utils

    from pipeline.pipeline import create_pipeline

    ir = compiler.Compiler().compile(create_pipeline(config, beam_args=local_beam_pipeline_args(config)))
    deployment = runner_utils.extract_local_deployment_config(ir)
    return {
        node.pipeline_node.node_info.id: runner_utils.extract_executor_spec(deployment, node.pipeline_node.node_info.id)
        for node in ir.nodes
    }


def test_a_local_run_hands_its_choice_to_beam_outside_the_cache_key(garment_data_dir, monkeypatch):
    """The local pipeline is the same for every mode; TFX resolves the chosen options as a Beam
    component starts, from the environment the local runner sets for the run."""
    from tfx.dsl.compiler import placeholder_utils
    from tfx.orchestration.portable import data_types

    config = load_config(["dataset.name=garment_shapes/small", f"dataset.data_dir={garment_data_dir}"])
    specs = _local_executor_specs(config)
    beam_nodes = [node for node, spec in specs.items() if spec and spec.DESCRIPTOR.name == "BeamExecutableSpec"]
    assert {"TFDSExampleGen", "StatisticsGen", "Evaluator"} <= set(beam_nodes)
    context = placeholder_utils.ResolutionContext(exec_info=data_types.ExecutionInfo())
    for cores, examples in ((2, 2_500), (64, 10_000_000)):  # in_memory; multi_processing
        _as_machine(monkeypatch, cores)
        monkeypatch.setattr("pipeline.beam_args.prepared_size", lambda dataset, examples=examples: examples)
        mode = beam_mode(config)
        assert _local_executor_specs(config) == specs  # nothing of the mode in any node's cache key
        for name, value in mode_environment(mode).items():
            monkeypatch.setenv(name, value)
        for node in beam_nodes:
            resolved = [
                placeholder_utils.resolve_placeholder_expression(arg, context)
                for arg in specs[node].beam_pipeline_args_placeholders
            ]
            assert resolved == mode.args + beam_pipeline_args(config), node


@pytest.mark.e2e  # two LocalDagRunner runs
def test_a_rerun_after_the_first_run_prepared_the_dataset_trains_nothing(tmp_path):
    """Run 1 prepares garment_shapes/small (size unknown when it starts), run 2 finds it prepared:
    the mode's reason differs, and still every data and training component of run 2 is cached."""
    from helpers import LENIENT_GATE, small_pipeline_overrides

    from pipeline.local_runner import run_local
    from pipeline.run_summary import summarize_run

    overrides = small_pipeline_overrides(tmp_path, str(tmp_path / "tfds"))
    small_model = ["model.hidden_dims=64", "model.latent_dim=16", "model.batch_size=64"]
    config = load_config([*overrides, "dataset.download=true", *small_model, *LENIENT_GATE]).absolute()
    assert prepared_size(config.dataset) is None  # ExampleGen prepares it
    runs = []
    for _ in range(2):
        run_local(config)
        runs.append(summarize_run(config.resolved_metadata_path, config.pipeline_name))
    assert prepared_size(config.dataset) == 2_500
    assert runs[0].beam_mode.startswith("in_memory (chosen: dataset size unknown")
    assert runs[1].beam_mode == choose_direct_mode(2_500, os.cpu_count()).describe()  # recorded on the run
    data_and_training = ["TFDSExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer"]
    first, second = dict(runs[0].components), dict(runs[1].components)
    assert {node: first[node] for node in data_and_training} == dict.fromkeys(data_and_training, "complete")
    assert {node: second[node] for node in data_and_training} == dict.fromkeys(data_and_training, "cached"), second
