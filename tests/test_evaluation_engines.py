"""evaluation.engine=batched against TFMA's default path (evaluation.engine=tfma) on real runs.

Two LocalDagRunner runs on one root (garment_shapes/small) with the batched engine, the default:
the first has no baseline, the second (a retrained model) is compared with the first, which it
finds live. TFX's Evaluator executor then evaluates each run's own artifacts again with
engine=tfma; both outputs must give the same slices, counts, PSNR (within 0.01 dB), baseline
diffs and blessing, and must read the same through TFMA's loaders and the run summary.
"""

import json
import os

import pytest
from helpers import LENIENT_GATE, metrics_by_slice, small_pipeline_overrides

from pipeline.evaluation import EVALUATOR_MODULE, eval_config
from pipeline.evaluation_record import read_evaluation
from pipeline.local_runner import run_local
from pipeline.mlmd_reader import execution_outputs, latest_run_id, node_executions, open_store
from pipeline.run_summary import format_summary, summarize_run
from pipeline_config import load_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _input_artifacts(store, execution_id: int) -> dict:
    """Input key -> the tfx Artifact an execution read (examples, model, baseline_model)."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx.types import artifact_utils

    events = [
        e
        for e in store.get_events_by_execution_ids([execution_id])
        if e.type == metadata_store_pb2.Event.INPUT and e.path.steps
    ]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    types = {t.id: t for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts.values()}))}
    result: dict = {}
    for event in events:
        artifact = artifacts[event.artifact_id]
        result.setdefault(event.path.steps[0].key, []).append(
            artifact_utils.deserialize_artifact(types[artifact.type_id], artifact)
        )
    return result


def evaluate_again(inputs: dict, gate, engine: str, output_dir: str) -> dict:
    """TFX's Evaluator executor on the same inputs with `engine`: {evaluation uri, blessed}."""
    from tfx.components.evaluator.executor import Executor
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri = os.path.join(output_dir, "evaluation")
    blessing.uri = os.path.join(output_dir, "blessing")
    os.makedirs(blessing.uri)
    properties = {
        "eval_config": proto_utils.proto_to_json(eval_config(gate, engine)),
        "example_splits": json.dumps(["eval"]),
    }
    if engine == "batched":
        properties["module_path"] = EVALUATOR_MODULE
    Executor().Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]}, properties)
    return {"uri": evaluation.uri, "blessed": os.path.exists(os.path.join(blessing.uri, "BLESSED"))}


@pytest.fixture(scope="module")
def engines(garment_data_dir, tmp_path_factory):
    """For each of two pipeline runs: the batched pipeline's evaluation and blessing, and the
    same inputs evaluated again by the Evaluator executor with engine=tfma."""
    root = tmp_path_factory.mktemp("engines")
    overrides = small_pipeline_overrides(root, garment_data_dir, epochs=1) + LENIENT_GATE
    runs = []
    for epochs in (1, 2):  # the second run retrains (another model) and has the first as baseline
        config = load_config(overrides + [f"model.epochs={epochs}"]).absolute()
        assert config.evaluation.engine == "batched"  # the default
        run_local(config)
        metadata, name = config.resolved_metadata_path, config.pipeline_name
        store = open_store(metadata)
        execution = node_executions(store, name, latest_run_id(store, name))["Evaluator"]
        summary = summarize_run(metadata, name)
        inputs = _input_artifacts(store, execution.id)
        tfma_run = evaluate_again(inputs, config.gate, "tfma", str(root / f"tfma_{epochs}"))
        evaluation = execution_outputs(store, execution.id)["evaluation"]
        runs.append(
            {"summary": summary, "batched_uri": evaluation.uri, "tfma": tfma_run, "inputs": inputs, "config": config}
        )
    return runs


def test_both_engines_give_the_same_slices_counts_psnr_and_baseline_diffs(engines):
    for run in engines:
        batched, tfma_path = metrics_by_slice(run["batched_uri"]), metrics_by_slice(run["tfma"]["uri"])
        assert set(batched) == set(tfma_path) and () in batched and len(batched) == 11  # overall + 10 classes
        for slice_key, expected in tfma_path.items():
            got = batched[slice_key]
            assert set(got) == set(expected), slice_key
            for key, value in expected.items():
                if key[0] == "example_count":
                    assert got[key] == value  # exact
                elif key[0] == "psnr":
                    assert got[key] == pytest.approx(value, abs=0.01), (slice_key, key)
                else:
                    assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-5), (slice_key, key)
        counts = {
            slice_key: next(v for k, v in metrics.items() if k[0] == "example_count")
            for slice_key, metrics in batched.items()
        }
        assert counts[()] == run["summary"].example_count > 0
        assert sum(count for slice_key, count in counts.items() if slice_key) == counts[()]
    first, second = engines
    assert "baseline_model" not in first["inputs"] or not first["inputs"]["baseline_model"]
    assert len(second["inputs"]["baseline_model"]) == 1  # the first run's model, live
    diffs = [key for key in metrics_by_slice(second["batched_uri"])[()] if key[3]]
    assert ("psnr", "candidate", "psnr", True) in diffs


def test_both_engines_bless_alike_and_read_alike(engines):
    import tensorflow_model_analysis as tfma

    for run in engines:
        summary = run["summary"]
        assert summary.blessed is run["tfma"]["blessed"] is True
        assert tfma.load_validation_result(run["batched_uri"]).validation_ok
        again = read_evaluation(run["tfma"]["uri"])
        assert summary.example_count == again.example_count
        assert summary.psnr == pytest.approx(again.psnr, abs=0.01)
        assert summary.class_psnr.keys() == again.class_psnr.keys()
        assert summary.failures == again.failures == []
        assert "Blessed: yes" in format_summary(summary)
    second = engines[1]["summary"]
    assert second.baseline_psnr is not None
    assert second.baseline_psnr == pytest.approx(engines[0]["summary"].psnr, abs=0.01)


def test_a_failed_change_threshold_is_refused_by_both_engines(engines, tmp_path):
    """The second run's inputs with a PSNR floor just above the candidate's and a zero change
    tolerance: both engines refuse, for the same conditions."""
    run = engines[1]
    gate = run["config"].gate.model_copy(
        update={"psnr_threshold": run["summary"].psnr + 0.005, "change_tolerance": 0.0}
    )
    results = {
        engine: evaluate_again(run["inputs"], gate, engine, str(tmp_path / engine)) for engine in ("batched", "tfma")
    }
    assert results["batched"]["blessed"] is results["tfma"]["blessed"] is False
    failures = {}
    for engine, result in results.items():
        failures[engine] = read_evaluation(result["uri"]).failures
    assert failures["batched"] and failures["batched"] == failures["tfma"]
    assert any("psnr" in failure.lower() for failure in failures["batched"])
