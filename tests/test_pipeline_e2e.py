"""End-to-end LocalDagRunner runs on garment_shapes/small, asserting on the real artifacts.

One pipeline root, four runs in order: (1) a reachable threshold, blessed and pushed; (2) the
same again, served from cache (its re-evaluation against itself publishes nothing new); (3) an
unreachable threshold through the real `sparse-ae` command, not blessed; (4) a retrained model,
blessed against run 1's model as baseline.
"""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import run_cli, serving_listing, set_args, small_pipeline_overrides
from ml_metadata.proto import metadata_store_pb2

from pipeline.local_runner import run_local
from pipeline.run_summary import open_store, summarize_run
from pipeline_config import load_config

pytestmark = pytest.mark.e2e  # every test here reads a pipeline run

UPSTREAM = ["TFDSExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer"]


@pytest.fixture(scope="module")
def runs(garment_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    overrides = small_pipeline_overrides(root, garment_data_dir, epochs=3) + [
        "gate.psnr_threshold=10",
        "gate.change_tolerance=1.0",
    ]
    config = load_config(overrides)
    metadata, name = config.absolute().resolved_metadata_path, config.pipeline_name
    serving = os.path.join(root, "serving")
    results = {}

    run_local(config)
    results["first"] = summarize_run(metadata, name)
    results["serving_after_first"] = serving_listing(serving)

    run_local(config)
    results["cached"] = summarize_run(metadata, name)
    results["serving_after_cached"] = serving_listing(serving)

    results["cli"] = run_cli("pipeline", "run", *set_args(overrides + ["gate.psnr_threshold=99"]))
    results["unreachable"] = summarize_run(metadata, name)
    results["serving_after_unreachable"] = serving_listing(serving)

    run_local(load_config(overrides + ["model.seed=7"]))
    results["second_blessed"] = summarize_run(metadata, name)
    results.update(config=config.absolute(), serving=serving, metadata=metadata)
    return results


def eval_images(garment_data_dir):
    builder = tfds.builder("garment_shapes/small", data_dir=garment_data_dir)
    batch = tfds.as_numpy(builder.as_dataset(split="test", batch_size=-1))
    return batch["image"], batch["label"]


def test_blessed_model_is_pushed_and_reproduces_the_evaluators_psnr(runs, garment_data_dir):
    first = runs["first"]
    assert not first.failed and first.blessed is True and not first.failures
    assert first.psnr is not None and first.psnr >= 10
    assert first.pushed_path and os.path.dirname(first.pushed_path) == runs["serving"]
    assert runs["serving_after_first"] == [os.path.basename(first.pushed_path)]

    model = tf.saved_model.load(first.pushed_path)
    images, _ = eval_images(garment_data_dir)
    outputs = model.signatures["reconstruct_uint8"](images=tf.constant(images))
    assert outputs["reconstruction"].shape == images.shape
    assert abs(float(np.mean(outputs["psnr"])) - first.psnr) < 0.1
    floats = model.signatures["reconstruct"](images=tf.constant(images / 127.5 - 1, tf.float32))
    np.testing.assert_allclose(floats["psnr"].numpy(), outputs["psnr"].numpy(), atol=1e-3)


def test_per_class_psnr_is_in_the_evaluation(runs):
    first = runs["first"]
    assert sorted(first.class_psnr) == list(range(10))
    assert min(first.class_psnr.values()) <= first.psnr <= max(first.class_psnr.values())
    assert first.example_count == 500


def test_unreachable_threshold_is_not_blessed_and_serving_is_untouched(runs):
    cli, unreachable = runs["cli"], runs["unreachable"]
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "Blessed: no" in cli.stdout and "threshold 99.000 dB" in cli.stdout
    assert "Evaluator started" in cli.stdout and "Evaluator finished" in cli.stdout
    assert unreachable.blessed is False and unreachable.pushed_path is None
    assert any("psnr" in failure and "short by" in failure for failure in unreachable.failures)
    assert runs["serving_after_unreachable"] == runs["serving_after_first"]


def test_summary_says_which_beam_mode_ran_and_why(runs):
    """The small pipeline leaves the mode to the choice: in-memory for 2,500 examples, whatever the cores."""
    from pipeline.beam_args import choose_direct_mode

    expected = choose_direct_mode(2_500, os.cpu_count()).describe()
    assert expected.startswith("in_memory (chosen: ")
    assert runs["first"].beam_mode == expected and runs["cached"].beam_mode == expected
    assert f"Beam: {expected}" in runs["cli"].stdout


def test_examples_match_the_tfds_splits_exactly(runs, garment_data_dir):
    examples_uri = runs["first"].artifacts["TFDSExampleGen.examples"]
    builder = tfds.builder("garment_shapes/small", data_dir=garment_data_dir)
    for tfds_split, tfx_split in (("train", "train"), ("test", "eval")):
        files = glob.glob(os.path.join(examples_uri, f"Split-{tfx_split}", "*.gz"))
        records = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
        assert len(records) == builder.info.splits[tfds_split].num_examples
        written = {}
        for record in records:
            features = tf.train.Example.FromString(record).features.feature
            image = np.array(features["image"].int64_list.value, np.uint8)
            written[image.tobytes()] = features["label"].int64_list.value[0]
        source = tfds.as_numpy(builder.as_dataset(split=tfds_split, batch_size=-1))
        pairs = zip(source["image"], source["label"], strict=True)
        expected = {image.reshape(-1).tobytes(): int(label) for image, label in pairs}
        assert written == expected


def test_lineage_traces_the_pushed_model_to_the_tfds_examples(runs):
    store = open_store(runs["metadata"])
    pushed = [
        a
        for a in store.get_artifacts_by_type("PushedModel")
        if a.custom_properties["pushed_destination"].string_value == runs["first"].pushed_path
    ]
    assert pushed  # run 1's push (and run 2's, which found the same model already live)

    def producer_inputs(artifact_id, input_key):
        output = [
            e for e in store.get_events_by_artifact_ids([artifact_id]) if e.type == metadata_store_pb2.Event.OUTPUT
        ][0]
        inputs = [
            e
            for e in store.get_events_by_execution_ids([output.execution_id])
            if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == input_key
        ]
        return store.get_artifacts_by_id([inputs[0].artifact_id])[0]

    for push in pushed:
        model = producer_inputs(push.id, "model")  # Pusher's input
        assert model.uri == runs["first"].artifacts["Trainer.model"]
    examples = producer_inputs(model.id, "examples")  # Trainer's input
    assert examples.uri == runs["first"].artifacts["TFDSExampleGen.examples"]
    assert examples.custom_properties["tfds_name"].string_value == "garment_shapes"
    assert examples.custom_properties["tfds_config"].string_value == "small"
    assert examples.custom_properties["tfds_version"].string_value == "1.0.0"


def test_rerun_with_cache_reuses_upstream_components(runs):
    states = dict(runs["cached"].components)
    assert all(states[node] == "cached" for node in UPSTREAM), states
    assert runs["cached"].artifacts["Trainer.model"] == runs["first"].artifacts["Trainer.model"]
    # Re-blessed against itself as baseline: the same model stays live, no duplicate version.
    assert runs["cached"].pushed_path == runs["first"].pushed_path
    assert runs["serving_after_cached"] == runs["serving_after_first"]
    # Run 3 changed only the gate: data and training still come from cache, evaluation does not.
    unreachable = dict(runs["unreachable"].components)
    assert all(unreachable[node] == "cached" for node in UPSTREAM) and unreachable["Evaluator"] == "complete"


def test_second_blessed_run_is_compared_against_the_first(runs):
    first, second = runs["first"], runs["second_blessed"]
    assert dict(second.components)["Trainer"] == "complete"
    assert second.baseline_psnr == pytest.approx(first.psnr, abs=1e-6)
    assert second.example_count == 500  # the candidate's count, not the candidate-baseline diff
    assert second.blessed is True and second.pushed_path != first.pushed_path
    assert serving_listing(runs["serving"]) == sorted(
        [os.path.basename(first.pushed_path), os.path.basename(second.pushed_path)]
    )


def validate_with_tfma(runs, config, output_path):
    """Run TFMA on run 1's model and eval split with config; returns its validation result."""
    import tensorflow_model_analysis as tfma

    model_path = os.path.join(runs["first"].artifacts["Trainer.model"], "Format-Serving")
    files = os.path.join(runs["first"].artifacts["TFDSExampleGen.examples"], "Split-eval", "*.gz")
    shared = tfma.default_eval_shared_model(model_path, eval_config=config)
    tfma.run_model_analysis(shared, config, data_location=files, file_format="tfrecords", output_path=str(output_path))
    return tfma.load_validation_result(str(output_path))


def test_a_threshold_on_a_metric_never_computed_does_not_pass(runs, tmp_path):
    from pipeline.evaluation import eval_config

    config = eval_config(runs["config"].gate)
    config.metrics_specs[0].metrics[0].per_slice_thresholds[0].threshold.ClearField("change_threshold")  # no baseline
    config.metrics_specs[0].thresholds["psnr_typo"].value_threshold.lower_bound.value = 0.0
    validation = validate_with_tfma(runs, config, tmp_path)
    assert not validation.validation_ok
    failed = [
        failure.metric_key.name
        for per_slice in validation.metric_validations_per_slice
        for failure in per_slice.failures
    ]
    assert "psnr_typo" in failed and "psnr" not in failed


def test_the_overall_threshold_is_not_a_class_floor(runs, tmp_path):
    """A threshold between the worst class and the overall PSNR passes; as a class floor it fails."""
    from pipeline.evaluation import eval_config

    first = runs["first"]
    between = (min(first.class_psnr.values()) + first.psnr) / 2
    for floor, expected_ok in ((None, True), (between, False)):
        gate = runs["config"].gate.model_copy(update={"psnr_threshold": between, "class_psnr_floor": floor})
        config = eval_config(gate)
        config.metrics_specs[0].metrics[0].per_slice_thresholds[0].threshold.ClearField("change_threshold")
        validation = validate_with_tfma(runs, config, tmp_path / str(floor))
        assert validation.validation_ok == expected_ok
        if not expected_ok:
            assert all(
                per_slice.slice_key.single_slice_keys[0].column == "label"
                for per_slice in validation.metric_validations_per_slice
            )
