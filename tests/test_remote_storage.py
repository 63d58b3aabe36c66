"""Artifacts, run directories and the serving directory on a non-local filesystem (issue 14).

On Kubeflow and Vertex AI every artifact URI, and the serving directory, is a gs:// path. Here the
real executors and modules run with their artifacts on TensorFlow's in-process ram:// filesystem
(see tests/remote_fs.py): what builtin open/glob/os calls would miss or write to a local folder
named `ram:` fails these tests. The inputs (examples, statistics, schema) are made on local disk by
the real ExampleGen, StatisticsGen and SchemaGen executors, then copied to ram://.
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2, trainer_pb2
from tfx.types import standard_artifacts
from tfx.utils import io_utils, proto_utils

from components.serving_dir import ISSUED_PREFIX, STAGING_PREFIX, PublishError, publish
from components.serving_pusher.executor import Executor as PusherExecutor
from components.strict_example_validator import Executor as ValidatorExecutor
from components.strict_example_validator import not_constant
from sparse_ae.config import SparseAEConfig
from sparse_ae.data import IMAGE_KEY
from sparse_ae.errors import DataValidationError
from sparse_ae.serving_layout import serving_versions
from sparse_ae.storage import upload_tree

MODEL = SparseAEConfig(hidden_dims=(32,), latent_dim=8, batch_size=64, epochs=1, shuffle_buffer=256)


def _artifact(cls, uri: str, **properties):
    artifact = cls()
    artifact.uri = uri
    for key, value in properties.items():
        setattr(artifact, key, value)
    return artifact


def _files(root: str) -> dict:
    """Relative path -> bytes of every file under root, on any filesystem."""
    found = {}
    for folder, _, names in tf.io.gfile.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = tf.io.gfile.GFile(path, "rb").read()
    return found


def _no_local_uri_folder() -> bool:
    """No local folder named after the scheme (what os.makedirs('ram://x') makes) in the working dir."""
    return not os.path.exists("ram:")


@pytest.fixture(scope="module")
def local_inputs(garment_data_dir, tmp_path_factory) -> str:
    """Examples (train 300, eval 50), statistics and schema of garment_shapes/small, made on local disk
    by the pipeline's own ExampleGen and TFX's StatisticsGen and SchemaGen executors."""
    from tfx.components.schema_gen.executor import Executor as SchemaGenExecutor
    from tfx.components.statistics_gen.executor import Executor as StatisticsGenExecutor

    from components.tfds_example_gen.executor import Executor as ExampleGenExecutor

    root = str(tmp_path_factory.mktemp("inputs"))
    context = dict(
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
        tmp_dir=os.path.join(root, "tmp"),
    )
    examples = _artifact(standard_artifacts.Examples, os.path.join(root, "examples"))
    ExampleGenExecutor(ExampleGenExecutor.Context(**context)).Do(
        {},
        {"examples": [examples]},
        {
            "dataset": "garment_shapes/small",
            "version": "",
            "data_dir": garment_data_dir,
            "download": 0,
            "split_mapping": json.dumps({"train[:300]": "train", "test[:50]": "eval"}),
            "image_key": "image",
            "label_key": "label",
        },
    )
    statistics = _artifact(
        standard_artifacts.ExampleStatistics, os.path.join(root, "statistics"), split_names=examples.split_names
    )
    StatisticsGenExecutor(StatisticsGenExecutor.Context(**context)).Do(
        {"examples": [examples]}, {"statistics": [statistics]}, {"exclude_splits": "[]"}
    )
    schema = _artifact(standard_artifacts.Schema, os.path.join(root, "schema"))
    SchemaGenExecutor().Do(
        {"statistics": [statistics]}, {"schema": [schema]}, {"infer_feature_shape": 1, "exclude_splits": "[]"}
    )
    return root


@pytest.fixture
def remote_inputs(local_inputs, ram_root) -> dict:
    """The inputs copied to ram://, as artifacts."""
    upload_tree(local_inputs, os.path.join(ram_root, "inputs"))
    uri = os.path.join(ram_root, "inputs")
    splits = json.dumps(["train", "eval"])
    return {
        "examples": _artifact(standard_artifacts.Examples, os.path.join(uri, "examples"), split_names=splits),
        "statistics": _artifact(
            standard_artifacts.ExampleStatistics, os.path.join(uri, "statistics"), split_names=splits
        ),
        "schema": _artifact(standard_artifacts.Schema, os.path.join(uri, "schema")),
        "root": ram_root,
    }


def _validate(inputs: dict, schema_uri: str) -> standard_artifacts.ExampleAnomalies:
    anomalies = _artifact(standard_artifacts.ExampleAnomalies, os.path.join(inputs["root"], "anomalies"))
    schema = _artifact(standard_artifacts.Schema, schema_uri)
    config = proto_utils.proto_to_json(not_constant(IMAGE_KEY, "blank images"))
    ValidatorExecutor().Do(
        {"statistics": [inputs["statistics"]], "schema": [schema]},
        {"anomalies": [anomalies]},
        {"exclude_splits": "[]", "custom_validation_config": config},
    )
    return anomalies


@pytest.mark.slow  # TFDV statistics and schema made for it; the executors run
def test_the_validator_passes_clean_data_on_a_remote_uri(remote_inputs):
    anomalies = _validate(remote_inputs, remote_inputs["schema"].uri)
    assert fileio.glob(os.path.join(anomalies.uri, "Split-*", "SchemaDiff.pb"))  # written there, read there
    assert _no_local_uri_folder()


@pytest.mark.slow  # TFDV statistics and schema made for it; the executors run
def test_anomalies_on_a_remote_uri_stop_the_validator(remote_inputs):
    """A schema that requires a feature the data lacks: the anomalies are written to ram:// and must
    be read back from there (glob.glob and open find nothing on such a URI)."""
    schema = io_utils.parse_pbtxt_file(os.path.join(remote_inputs["schema"].uri, "schema.pbtxt"), schema_pb2.Schema())
    schema.feature.add().CopyFrom(
        text_format.Parse(
            'name: "caption" type: BYTES presence { min_fraction: 1.0 min_count: 1 }', schema_pb2.Feature()
        )
    )
    strict_uri = os.path.join(remote_inputs["root"], "strict_schema")
    io_utils.write_pbtxt_file(os.path.join(strict_uri, "schema.pbtxt"), schema)
    with pytest.raises(
        DataValidationError,
        match=r"^2 data anomalies: eval: caption: Column dropped; train: caption: Column dropped; nothing is trained",
    ):
        _validate(remote_inputs, strict_uri)
    assert _no_local_uri_folder()


def _custom_config(**extra) -> str:
    return json.dumps({"model": MODEL.model_dump(mode="json"), "dataset": "garment_shapes/small", **extra})


@pytest.mark.slow  # TFDV statistics and schema made for it; the executors run
def test_the_trainer_writes_its_run_dir_and_model_to_a_remote_uri(remote_inputs):
    """run_fn through TFX's Trainer executor: the checkpoint (.weights.h5, which h5py writes only
    locally), metrics.json and TensorBoard logs land in the remote model run dir, and the SavedModel,
    exported from the best checkpoint read back from there, in the remote model dir."""
    from tfx.components.trainer.executor import GenericExecutor

    from sparse_ae.train import LOGS_DIR, METRICS_FILE, WEIGHTS_FILE

    root = remote_inputs["root"]
    model = _artifact(standard_artifacts.Model, os.path.join(root, "model"))
    model_run = _artifact(standard_artifacts.ModelRun, os.path.join(root, "model_run"))
    GenericExecutor(GenericExecutor.Context(tmp_dir=os.path.join(root, "trainer_tmp"))).Do(
        {"examples": [remote_inputs["examples"]], "schema": [remote_inputs["schema"]]},
        {"model": [model], "model_run": [model_run]},
        {
            "run_fn": "pipeline.trainer_module.run_fn",
            "custom_config": _custom_config(),
            "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"], num_steps=0)),
            "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"], num_steps=0)),
        },
    )

    metrics = json.loads(io_utils.read_string_file(os.path.join(model_run.uri, METRICS_FILE)))
    assert metrics["epochs_run"] == 1 and metrics["best_epoch"] == 1 and not metrics["diverged"]
    weights = os.path.join(model_run.uri, WEIGHTS_FILE)
    assert tf.io.gfile.GFile(weights, "rb").read(8) == b"\x89HDF\r\n\x1a\n"  # an HDF5 file
    assert tf.io.gfile.glob(os.path.join(model_run.uri, LOGS_DIR, "*", "events.out.tfevents.*"))
    served = tf.saved_model.load(os.path.join(model.uri, "Format-Serving"))
    images = tf.zeros((2, *MODEL.image_shape), tf.uint8)
    outputs = served.signatures["reconstruct_uint8"](images=images)
    assert outputs["psnr"].shape == (2,) and bool(tf.reduce_all(tf.math.is_finite(outputs["psnr"])))
    assert _no_local_uri_folder()


def test_the_best_checkpoint_survives_the_round_trip_through_a_remote_run_dir(ram_root, small_config):
    """fit() checkpoints locally and copies to the remote dir; load_weights reads it back: the same weights."""
    import numpy as np
    import tf_keras

    from sparse_ae.model import build_model
    from sparse_ae.storage import load_weights
    from sparse_ae.train import WEIGHTS_FILE, fit

    images = np.random.default_rng(0).uniform(-1, 1, (128, *small_config.image_shape)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((images, images)).batch(64)
    model = build_model(small_config)
    by_epoch = []
    keep = tf_keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: by_epoch.append(model.get_weights()))
    summary = fit(model, data, data, 3, os.path.join(ram_root, "run"), verbose=0, extra_callbacks=[keep])
    restored = build_model(small_config)
    restored(images[:1])
    load_weights(restored, os.path.join(ram_root, "run", WEIGHTS_FILE))
    best = by_epoch[summary["best_epoch"] - 1]
    assert all(np.array_equal(saved, loaded) for saved, loaded in zip(best, restored.get_weights(), strict=False))
    assert len(restored.get_weights()) == len(best) > 0
    assert _no_local_uri_folder()


def test_reconstruct_reads_the_weights_train_wrote_to_a_remote_folder(ram_root, garment_data_dir, capsys):
    """`sparse-ae train --output ram://...` then `sparse-ae reconstruct --weights ram://...` (h5py reads
    only local files): the architecture from the remote metrics.json, the grid written remotely too."""
    from sparse_ae.cli import main
    from sparse_ae.train import METRICS_FILE, WEIGHTS_FILE

    dataset = ["--set", f"dataset.data_dir={garment_data_dir}", "--set", "dataset.download=false"]
    run = f"{ram_root}/run"
    small = ["--set", "model.epochs=1", "--set", "model.hidden_dims=32", "--set", "model.latent_dim=12"]
    assert main(["train", "--dataset", "garment_shapes/small", *dataset, *small, "--output", run]) == 0
    assert json.loads(tf.io.gfile.GFile(f"{run}/{METRICS_FILE}").read())["config"]["latent_dim"] == 12
    grid = f"{ram_root}/pictures/grid.png"
    tf.io.gfile.makedirs(os.path.dirname(grid))
    # No --set model.*: a default model (latent_dim 64) would not fit these weights.
    argv = ["reconstruct", "--dataset", "garment_shapes/small", *dataset, "--count", "4", "--output", grid]
    assert main([*argv, "--weights", f"{run}/{WEIGHTS_FILE}"]) == 0
    assert tf.io.gfile.GFile(grid, "rb").read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*argv, "--weights", f"{run}/no-such.weights.h5"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert _no_local_uri_folder()


@pytest.mark.slow  # TFDV statistics and schema made for it; the executors run
def test_the_tuner_writes_its_trials_and_results_to_remote_uris(remote_inputs):
    from pipeline.tuner_module import SparsityTunerExecutor
    from sparse_ae.tuning import TRIALS_FILE, TunerConfig

    root = remote_inputs["root"]
    tuner = TunerConfig(max_trials=2, epochs_per_trial=1, latent_dims=(8,))
    best = _artifact(standard_artifacts.HyperParameters, os.path.join(root, "best_hyperparameters"))
    results = _artifact(standard_artifacts.TunerResults, os.path.join(root, "tuner_results"))
    SparsityTunerExecutor(SparsityTunerExecutor.Context(tmp_dir=os.path.join(root, "tuner_tmp"), unique_id="1")).Do(
        {"examples": [remote_inputs["examples"]], "schema": [remote_inputs["schema"]]},
        {"best_hyperparameters": [best], "tuner_results": [results]},
        {
            "tuner_fn": "pipeline.tuner_module.tuner_fn",
            "custom_config": _custom_config(tuner=tuner.model_dump(mode="json")),
            "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"], num_steps=0)),
            "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"], num_steps=0)),
        },
    )
    trials = json.loads(io_utils.read_string_file(os.path.join(results.uri, TRIALS_FILE)))["trials"]
    assert len(trials) == 2 and all(t["latent_dim"] == 8 for t in trials)
    values = json.loads(io_utils.read_string_file(os.path.join(best.uri, "best_hyperparameters.txt")))["values"]
    assert values["sparsity_target"] == trials[0]["sparsity_target"]
    # KerasTuner's own trial records went to the executor's (remote) working dir.
    assert tf.io.gfile.glob(os.path.join(root, "tuner_tmp", "*", "sparse_ae", "trial_*", "trial.json"))
    assert _no_local_uri_folder()


def test_standalone_trials_table_is_written_to_a_remote_folder(ram_root):
    from sparse_ae.tuning import TRIALS_FILE, TrialResult, load_trials, save_trials

    trial = TrialResult.from_metrics(
        "0",
        {"sparsity_target": 0.05, "sparsity_weight": 0.01, "latent_dim": 8},
        {"val_psnr": 20.0, "val_mean_activation": 0.05, "val_kl_penalty": 0.0},
        0.02,
    )
    path = save_trials([trial], os.path.join(ram_root, "tuning"), 0.02)
    assert path == os.path.join(ram_root, "tuning", TRIALS_FILE)
    assert load_trials(io_utils.read_string_file(path)) == ([trial], 0.02)
    assert _no_local_uri_folder()


# The pusher ------------------------------------------------------------------------------------


def _saved_model(path: str) -> str:
    """A SavedModel-shaped folder (any filesystem) with distinct contents."""
    for relative, content in (
        ("saved_model.pb", b"graph"),
        ("fingerprint.pb", os.urandom(16)),
        ("variables/variables.index", b"index"),
        ("variables/variables.data-00000-of-00001", os.urandom(4096)),
        ("assets/vocab.txt", b"a\nb\n"),
    ):
        io_utils.write_bytes_file(os.path.join(path, relative), content)
    return path


class _WatchedRam:
    """Records what a version folder held at the moment its saved_model.pb was written: what a
    model server polling the folder would find complete at that instant."""

    def __init__(self, monkeypatch):
        from remote_fs import RamFilesystem

        self.seen = {}
        copy = RamFilesystem.copy

        def watched_copy(src, dst, overwrite=False):
            if os.path.basename(dst) == "saved_model.pb":
                folder = os.path.dirname(dst)
                self.seen[folder] = sorted(_files(folder)) if tf.io.gfile.exists(folder) else []
            return copy(src, dst, overwrite)

        monkeypatch.setattr(RamFilesystem, "copy", staticmethod(watched_copy))


def test_the_pusher_publishes_to_a_remote_serving_dir_with_saved_model_pb_last(ram_root, monkeypatch):
    watched = _WatchedRam(monkeypatch)
    model = _artifact(standard_artifacts.Model, os.path.join(ram_root, "model"))
    _saved_model(os.path.join(model.uri, "Format-Serving"))
    blessing = _artifact(standard_artifacts.ModelBlessing, os.path.join(ram_root, "blessing"))
    io_utils.write_string_file(os.path.join(blessing.uri, "BLESSED"), "")
    blessing.set_int_custom_property("blessed", 1)
    serving = os.path.join(ram_root, "serving")
    destination = proto_utils.proto_to_json(
        pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving))
    )

    pushes = iter(range(10))

    def push():
        pushed = _artifact(standard_artifacts.PushedModel, os.path.join(ram_root, f"pushed_{next(pushes)}"))
        PusherExecutor().Do(
            {"model": [model], "model_blessing": [blessing]},
            {"pushed_model": [pushed]},
            {"push_destination": destination},
        )
        return pushed

    first = push()
    (version,) = serving_versions(serving)
    final = os.path.join(serving, str(version))
    assert first.get_string_custom_property("pushed_destination") == final
    assert _files(final) == _files(os.path.join(model.uri, "Format-Serving"))
    assert _files(first.uri) == _files(final)  # the archive in the PushedModel artifact
    # When saved_model.pb arrived, everything else of the version was already there.
    assert watched.seen[final] == sorted(set(_files(final)) - {"saved_model.pb"})
    assert sorted(tf.io.gfile.listdir(serving)) == [f"{ISSUED_PREFIX}{version}", str(version)]  # no staging marker left

    second = push()  # the same SavedModel again: already live, nothing new
    assert second.get_int_custom_property("already_live") == 1 and serving_versions(serving) == [version]
    assert _no_local_uri_folder()


def test_a_remote_version_is_invisible_until_complete_and_a_killed_push_is_cleaned_up(ram_root):
    model = _saved_model(os.path.join(ram_root, "model"))
    serving = os.path.join(ram_root, "serving")
    host = socket.gethostname()
    gone = int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )
    # What a push killed mid-copy leaves on an object store: its marker and a version folder
    # without saved_model.pb; and another host's push in progress, left alone.
    for version, owner in ((7, f"{host}-{gone}"), (8, "elsewhere.example-1")):
        io_utils.write_string_file(os.path.join(serving, f"{STAGING_PREFIX}{version}-{owner}"), "")
        io_utils.write_bytes_file(os.path.join(serving, str(version), "variables", "variables.index"), b"partial")
    assert serving_versions(serving) == []  # TF Serving waits for saved_model.pb; so do we

    path = publish(model, serving)
    version = os.path.basename(path)
    assert serving_versions(serving) == [int(version)] and _files(path) == _files(model)
    assert sorted(tf.io.gfile.listdir(serving)) == sorted(
        ["8", version, f"{ISSUED_PREFIX}{version}", f"{STAGING_PREFIX}8-elsewhere.example-1"]
    )
    assert _no_local_uri_folder()


def test_a_failed_remote_publish_leaves_nothing_and_never_replaces_a_version(ram_root):
    model = _saved_model(os.path.join(ram_root, "model"))
    serving = os.path.join(ram_root, "serving")
    publish(model, serving, version=1)
    with pytest.raises(PublishError, match=rf"could not publish the model to {serving}: no SavedModel folder"):
        publish(os.path.join(ram_root, "missing"), serving)
    with pytest.raises(PublishError, match="File exists"):
        publish(model, serving, version=1)
    assert sorted(tf.io.gfile.listdir(serving)) == [f"{ISSUED_PREFIX}1", "1"] and _files(
        os.path.join(serving, "1")
    ) == _files(model)


def test_live_path_keeps_the_uri_scheme(ram_root):
    from sparse_ae.serving_layout import live_path

    serving = os.path.join(ram_root, "serving")
    publish(_saved_model(os.path.join(ram_root, "model")), serving, version=3)
    assert live_path(serving + "/") == f"{serving}/3"  # os.path.normpath would give ram:/...
