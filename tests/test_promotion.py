"""Promotion control on garment_shapes/small, with real LocalDagRunner runs, ML Metadata and SavedModels.

One pipeline root, in order: (1) model A blessed and pushed (version v1); (2) model B (another
seed) rejected by an unreachable threshold; `promote` without a reason is refused; `promote B
--reason` publishes v2; (3) model A evaluated again: its baseline must be the live B; `rollback`
re-publishes v1 as v3; (4) model A evaluated again: its baseline must be the live A, although B
has the higher id and a (manual) blessing, which TFX's LatestBlessedModelStrategy would pick.
(5) model A evaluated with gate.baseline=latest_blessed: the summary names B, the Evaluator's
baseline, not the live A that the drift check's resolver resolves.
"""

import contextlib
import fcntl
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import run_cli, small_pipeline_overrides
from ml_metadata.proto import metadata_store_pb2

from components.serving_dir import same_saved_model
from pipeline import cli
from pipeline.local_runner import run_local
from pipeline.run_summary import format_summary, open_store, summarize_run
from pipeline_config import load_config
from sparse_ae.calibration import read_calibration
from sparse_ae.serving_layout import serving_versions

PROMOTE_REASON = "B's blur is acceptable for the catalogue; ship it (ticket OPS-42)"
ROLLBACK_REASON = "B broke the thumbnail service"


def sparse_ae(*argv: str):
    """The real `sparse-ae` command in this process: (exit status, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def history(garment_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("promotion")
    common = small_pipeline_overrides(root, garment_data_dir) + [
        "model.hidden_dims=64",
        "model.latent_dim=16",
        "gate.psnr_threshold=0",
        # wide: the seed-7 model is refused by its PSNR threshold alone, whatever its distance to the seed-42 one
        "gate.change_tolerance=5",
    ]
    sets = sum((["--set", item] for item in common), [])
    config = load_config(common).absolute()
    metadata, name, serving = config.resolved_metadata_path, config.pipeline_name, config.serving_dir
    h = {"config": config, "metadata": metadata, "serving": serving, "sets": sets}

    run_local(config)
    h["good"] = summarize_run(metadata, name)
    run_local(load_config(common + ["model.seed=7", "gate.psnr_threshold=99"]))
    h["rejected"] = summarize_run(metadata, name)
    h["versions_before_promote"] = serving_versions(serving)

    rejected_uri = h["rejected"].artifacts["Trainer.model"]
    h["no_reason"] = run_cli("promote", rejected_uri, *sets, timeout=300)
    h["blank_reason"] = sparse_ae("promote", rejected_uri, "--reason", "  ", *sets)
    h["versions_after_refusals"] = serving_versions(serving)

    store = open_store(metadata)
    h["good_id"] = store.get_artifacts_by_uri(h["good"].artifacts["Trainer.model"])[0].id
    h["rejected_id"] = store.get_artifacts_by_uri(rejected_uri)[0].id
    h["unforced"] = sparse_ae("promote", str(h["rejected_id"]), "--reason", PROMOTE_REASON, *sets)
    h["versions_after_unforced"] = serving_versions(serving)
    h["promote"] = sparse_ae("promote", str(h["rejected_id"]), "--reason", PROMOTE_REASON, "--force", *sets)
    h["versions_after_promote"] = serving_versions(serving)

    unreachable = common + ["gate.psnr_threshold=99"]  # evaluate A again, push nothing
    run_local(load_config(unreachable))
    h["after_promote"] = summarize_run(metadata, name)

    h["rollback"] = sparse_ae("rollback", "--reason", ROLLBACK_REASON, *sets)
    h["versions_after_rollback"] = serving_versions(serving)
    run_local(load_config(unreachable))
    h["after_rollback"] = summarize_run(metadata, name)

    h["models_json"] = sparse_ae("models", "--json", *sets)
    h["models_table"] = sparse_ae("models", *sets)

    # (5) A again against TFX's latest blessed model (B, blessed by its promotion) while the drift
    # check's resolver still resolves the live A
    run_local(load_config(unreachable + ["gate.baseline=latest_blessed"]))
    h["latest_blessed_baseline"] = summarize_run(metadata, name)
    return h


def path(history, version):
    return os.path.join(history["serving"], str(version))


def manual_executions(history, type_name):
    store = open_store(history["metadata"])
    result = []
    for execution in store.get_executions_by_type(type_name):
        events = store.get_events_by_execution_ids([execution.id])
        linked = {(e.type, e.path.steps[0].key): store.get_artifacts_by_id([e.artifact_id])[0] for e in events}
        contexts = [c.name for c in store.get_contexts_by_execution(execution.id)]
        result.append((execution, linked, contexts))
    return result


@pytest.mark.e2e
def test_promote_without_a_reason_is_refused(history):
    no_reason = history["no_reason"]
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    assert len(no_reason.stderr.strip().splitlines()) == 1, no_reason.stderr
    assert history["blank_reason"][0] == 2
    assert history["versions_after_refusals"] == history["versions_before_promote"]
    assert len(history["versions_before_promote"]) == 1  # only run 1's blessed model


@pytest.mark.e2e
def test_rejected_candidate_promoted_with_a_reason_becomes_live_and_is_recorded(history):
    rejected = history["rejected"]
    assert rejected.blessed is False and rejected.pushed_path is None
    code, out = history["unforced"]  # refused by the gate: shown with both figures, published only with --force
    assert code == 2 and history["versions_after_unforced"] == history["versions_before_promote"]
    assert (
        f"Candidate: model {history['rejected_id']}, eval PSNR {rejected.psnr:.2f} dB, refused by the gate\n"
        f"  Code sparsity per image: {rejected.active_units:.1f} active units, Hoyer {rejected.hoyer:.2f}" in out
    )
    assert f"Live: model {history['good_id']}, eval PSNR {history['good'].psnr:.2f} dB" in out
    assert "refused: overall: " in out and "< threshold 99.000 dB" in out
    code, out = history["promote"]
    assert code == 0, out
    versions = history["versions_after_promote"]
    assert versions[:-1] == history["versions_before_promote"] and len(versions) == 2
    model_dir = os.path.join(rejected.artifacts["Trainer.model"], "Format-Serving")
    assert same_saved_model(model_dir, path(history, versions[-1]))  # the live version is B

    [(execution, linked, contexts)] = manual_executions(history, "sparse_ae.ManualPromotion")
    assert execution.properties["reason"].string_value == PROMOTE_REASON
    assert execution.properties["user"].string_value
    assert execution.properties["psnr"].double_value == pytest.approx(rejected.psnr, abs=1e-6)
    assert json.loads(execution.properties["metrics"].string_value)["threshold"] == 99
    assert linked[(metadata_store_pb2.Event.INPUT, "model")].id == history["rejected_id"]
    pushed = linked[(metadata_store_pb2.Event.OUTPUT, "pushed_model")]
    assert pushed.custom_properties["pushed"].int_value == 1 and pushed.custom_properties["manual"].int_value == 1
    assert pushed.custom_properties["pushed_destination"].string_value == path(history, versions[-1])
    assert pushed.custom_properties["reason"].string_value == PROMOTE_REASON
    assert history["config"].pipeline_name in contexts  # found by lineage queries on the pipeline
    # B keeps its own anomaly calibration (issue 16), in its folder and on the manual push.
    calibration = read_calibration(path(history, versions[-1]))
    assert calibration is not None and calibration == read_calibration(model_dir)
    assert calibration != read_calibration(path(history, versions[0]))  # A's, measured with A
    assert pushed.custom_properties["anomaly_threshold"].double_value == pytest.approx(calibration.threshold, rel=1e-5)

    # The rejected run's report, read again, shows the override.
    report = summarize_run(history["metadata"], history["config"].pipeline_name, rejected.run_id)
    assert any(PROMOTE_REASON in action for action in report.manual_actions)
    assert "made live by manual promotion by" in format_summary(report)


@pytest.mark.e2e
def test_next_run_compares_against_the_promoted_live_model(history):
    after = history["after_promote"]
    assert after.baseline_model_id == history["rejected_id"]
    assert after.baseline_psnr == pytest.approx(history["rejected"].psnr, abs=1e-6)
    assert f"live version {history['versions_after_promote'][-1]} (manual promotion by" in format_summary(after)
    assert after.pushed_path is None and history["versions_after_rollback"][:2] == history["versions_after_promote"]


@pytest.mark.e2e
def test_rollback_makes_the_earlier_model_live_with_identical_reconstructions(history, garment_data_dir):
    code, out = history["rollback"]
    assert code == 0, out
    versions = history["versions_after_rollback"]
    first, live = versions[0], versions[-1]
    assert len(versions) == 3 and live > history["versions_after_promote"][-1]  # nothing deleted
    assert same_saved_model(path(history, first), path(history, live))

    builder = tfds.builder("garment_shapes/small", data_dir=garment_data_dir)
    images = tfds.as_numpy(builder.as_dataset(split="test", batch_size=-1))["image"]
    outputs = [
        tf.saved_model.load(path(history, v)).signatures["reconstruct_uint8"](images=tf.constant(images))
        for v in (first, live)
    ]
    np.testing.assert_array_equal(outputs[0]["reconstruction"].numpy(), outputs[1]["reconstruction"].numpy())
    np.testing.assert_array_equal(outputs[0]["psnr"].numpy(), outputs[1]["psnr"].numpy())

    [(execution, linked, _)] = manual_executions(history, "sparse_ae.Rollback")
    assert execution.properties["reason"].string_value == ROLLBACK_REASON
    assert execution.properties["from_version"].string_value == str(history["versions_after_promote"][-1])
    assert linked[(metadata_store_pb2.Event.INPUT, "model")].id == history["good_id"]
    pushed = linked[(metadata_store_pb2.Event.OUTPUT, "pushed_model")]
    assert pushed.custom_properties["pushed_version"].string_value == str(live)
    # The rolled-back model brings back its own calibration (issue 16).
    calibration = read_calibration(path(history, live))
    assert calibration is not None and calibration == read_calibration(path(history, first))
    assert pushed.custom_properties["anomaly_threshold"].double_value == pytest.approx(calibration.threshold, rel=1e-5)


@pytest.mark.e2e
def test_next_run_after_a_rollback_compares_against_the_live_model(history):
    after = history["after_rollback"]
    assert history["rejected_id"] > history["good_id"]  # the built-in strategy would pick B
    assert after.baseline_model_id == history["good_id"]
    assert after.baseline_psnr == pytest.approx(history["good"].psnr, abs=1e-6)
    assert f"live version {history['versions_after_rollback'][-1]} (rollback by" in format_summary(after)


@pytest.mark.e2e
def test_the_summary_names_the_baseline_the_evaluator_used_not_the_drift_checks(history):
    summary = history["latest_blessed_baseline"]
    assert summary.baseline_model_id == history["rejected_id"]
    assert summary.baseline_note == f"model {history['rejected_id']} (latest blessed; no longer the live version)"
    assert f"Baseline: {summary.baseline_note}" in format_summary(summary)


@pytest.mark.e2e
def test_models_lists_versions_and_candidates(history):
    code, out = history["models_json"]
    assert code == 0
    listing = json.loads(out)
    v1, v2, v3 = history["versions_after_rollback"]
    versions = {v["version"]: v for v in listing["versions"]}
    assert sorted(versions) == [v1, v2, v3]
    assert [versions[v]["live"] for v in (v1, v2, v3)] == [False, False, True]
    assert (versions[v1]["action"], versions[v1]["model_id"]) == ("pipeline", history["good_id"])
    assert (versions[v2]["action"], versions[v2]["model_id"], versions[v2]["reason"]) == (
        "promote",
        history["rejected_id"],
        PROMOTE_REASON,
    )
    assert (versions[v3]["action"], versions[v3]["model_id"], versions[v3]["reason"]) == (
        "rollback",
        history["good_id"],
        ROLLBACK_REASON,
    )

    candidates = {c["model_id"]: c for c in listing["candidates"]}
    assert sorted(candidates) == sorted([history["good_id"], history["rejected_id"]])
    good, rejected = candidates[history["good_id"]], candidates[history["rejected_id"]]
    assert (good["blessed"], good["threshold"], good["versions"]) == (True, 0.0, [v1, v3])
    assert (rejected["blessed"], rejected["threshold"], rejected["versions"]) == (False, 99.0, [v2])
    assert good["refused_by"] == [] and len(rejected["refused_by"]) == 1
    assert rejected["refused_by"][0].startswith("overall: ") and "< threshold 99.000 dB" in rejected["refused_by"][0]
    assert good["psnr"] == pytest.approx(history["good"].psnr, abs=1e-6)
    assert rejected["psnr"] == pytest.approx(history["rejected"].psnr, abs=1e-6)
    worst = min(history["rejected"].class_psnr.values())
    assert rejected["worst_class_psnr"] == pytest.approx(worst, abs=1e-6) and rejected["worst_class"]
    assert good["dataset"] == rejected["dataset"] == "garment_shapes/small:1.0.0"
    assert any(PROMOTE_REASON in note for note in rejected["manual"])

    code, table = history["models_table"]
    assert code == 0
    assert f"  Live: version {v3} (model {history['good_id']}, rollback)" in table.splitlines()
    live_line = next(line for line in table.splitlines() if line.strip().startswith("live "))
    assert str(v3) in live_line and "rollback" in live_line and ROLLBACK_REASON in live_line


class Killed(BaseException):
    """The process stopping where it is (nothing catches it)."""


@pytest.fixture(scope="module")
def interrupted(history):
    """After the history: `promote B` stopped (killed) right after publishing, before recording
    the outcome; the summary of the last run; `models`; `promote B` while a pipeline run holds
    the root's lock; `promote B` again; `models`."""
    from pipeline import promotion
    from pipeline.run_lock import lock_path

    config, serving, sets = history["config"], history["serving"], history["sets"]
    h = {"versions_before": serving_versions(serving)}

    def publish_then_stop(*args, **kwargs):
        promotion_publish(*args, **kwargs)
        raise Killed  # stands for a kill between publishing and recording the outcome

    promotion_publish = promotion.publish
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(promotion, "publish", publish_then_stop)
        try:
            promotion.promote(config, str(history["rejected_id"]), reason="ship B again", user="tester")
            h["crash"] = "not stopped"
        except Killed:
            h["crash"] = "stopped after publishing"
    h["versions_after_crash"] = serving_versions(serving)
    h["summary_after_crash"] = summarize_run(history["metadata"], config.pipeline_name)  # the run of (5)
    h["models_json"] = sparse_ae("models", "--json", *sets)
    h["models_table"] = sparse_ae("models", *sets)

    fd = os.open(lock_path(config.pipeline_root), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running `sparse-ae pipeline run` holds
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"pid 4242 on builder, started 2026-01-01 00:00:00\n", 0)
        h["busy"] = sparse_ae_with_stderr("promote", str(history["rejected_id"]), "--reason", "busy", "--force", *sets)
        h["versions_while_busy"] = serving_versions(serving)
    finally:
        os.close(fd)

    h["promote_again"] = sparse_ae_with_stderr(
        "promote", str(history["rejected_id"]), "--reason", "again", "--force", *sets
    )
    h["models_json_settled"] = sparse_ae("models", "--json", *sets)
    return h


def sparse_ae_with_stderr(*argv: str):
    """The real `sparse-ae` command in this process: (exit status, stdout, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code, out = sparse_ae(*argv)
    return code, out, err.getvalue()


@pytest.mark.e2e
def test_promote_while_a_run_holds_the_pipeline_root_is_refused_in_one_line(history, interrupted):
    code, _, err = interrupted["busy"]
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "promote refused: pipeline root" in err and "pid 4242 on builder" in err and "nothing was published" in err
    assert interrupted["versions_while_busy"] == interrupted["versions_after_crash"]


@pytest.mark.e2e
def test_a_promotion_stopped_between_publishing_and_recording_shows_as_not_finished(history, interrupted):
    assert interrupted["crash"] == "stopped after publishing"
    before, after = interrupted["versions_before"], interrupted["versions_after_crash"]
    assert after[:-1] == before and after[-1] > before[-1]  # published, then stopped
    stopped = after[-1]
    code, out = interrupted["models_json"]
    assert code == 0
    listing = json.loads(out)
    live = {v["version"]: v for v in listing["versions"]}[stopped]
    assert live["live"] and not live["finished"], live
    assert (live["action"], live["model_id"], live["reason"]) == ("promote", history["rejected_id"], "ship B again")
    (unfinished,) = listing["unfinished"]
    assert (unfinished["version"], unfinished["published"], unfinished["user"]) == (stopped, True, "tester")
    code, table = interrupted["models_table"]
    assert code == 0
    assert f"promotion of model {history['rejected_id']} to version {stopped} started" in table
    assert "not finished" in table and "(started, not finished)" in table


@pytest.mark.e2e
def test_the_next_promotion_records_the_outcome_of_the_stopped_one_first(history, interrupted):
    stopped = interrupted["versions_after_crash"][-1]
    code, _, err = interrupted["promote_again"]
    assert code == 2 and f"already live as version {stopped}" in err, err  # settled, then refused
    listing = json.loads(interrupted["models_json_settled"][1])
    assert listing["unfinished"] == []
    live = {v["version"]: v for v in listing["versions"]}[stopped]
    assert (live["finished"], live["action"], live["model_id"]) == (True, "promote", history["rejected_id"])
    latest = max((e for e, _, _ in manual_executions(history, "sparse_ae.ManualPromotion")), key=lambda e: e.id)
    assert latest.last_known_state == metadata_store_pb2.Execution.COMPLETE
    assert latest.properties["reason"].string_value == "ship B again"


def test_the_builtin_baseline_strategy_stays_selectable(tmp_path):
    """Kubeflow V2 compiles only TFX's built-in strategies: gate.baseline=latest_blessed selects it."""
    from tfx import v1 as tfx
    from tfx.dsl.components.common import resolver

    from components.live_model_strategy import LiveModelStrategy
    from pipeline.node_ids import BASELINE_RESOLVER
    from pipeline.pipeline import create_pipeline

    for value, expected, config in (
        ("live", LiveModelStrategy, {"serving_dir": str(tmp_path / "serving")}),
        ("latest_blessed", tfx.dsl.experimental.LatestBlessedModelStrategy, {}),
    ):
        pipeline = create_pipeline(
            load_config([f"pipeline_root={tmp_path}", f"serving_dir={tmp_path}/serving", f"gate.baseline={value}"])
        )
        node = next(c for c in pipeline.components if c.id == BASELINE_RESOLVER)
        assert node.exec_properties[resolver.RESOLVER_STRATEGY_CLASS] is expected
        assert node.exec_properties[resolver.RESOLVER_CONFIG] == config


@pytest.mark.e2e
def test_the_summary_says_what_models_says_of_a_live_version_whose_promotion_did_not_finish(history, interrupted):
    """The last run's baseline is B; B is live again through the stopped promotion, which `models`
    lists as not finished: the summary reads the same serving state."""
    stopped = interrupted["versions_after_crash"][-1]
    summary = interrupted["summary_after_crash"]
    assert summary.baseline_model_id == history["rejected_id"]
    assert summary.baseline_note == (
        f"model {history['rejected_id']}, the live version {stopped} "
        "(manual promotion by tester: ship B again, not finished)"
    )
