"""Bad input, injected for real: configuration through the real CLI, damaged copies of a prepared
TFDS data_dir, data that ExampleValidator flags, and a Trainer that diverges.

Each fault must stop the run at the earliest component that can see it, name it in the run
summary (read back from ML Metadata) in one line, and leave the served models and ML Metadata's
models, blessings and pushes as they were. The pipeline faults share one pipeline root whose
first run (1 epoch, lenient gate) pushed a model; the data faults run in-process and fail in
TFDSExampleGen within seconds.
"""

import glob
import io
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import file_digests as tree
from helpers import run_cli, served_pipeline_root
from PIL import Image

from pipeline.local_runner import run_local
from pipeline.run_summary import format_summary, open_store, summarize_run
from pipeline_config import load_config
from sparse_ae.errors import DatasetUnavailableError, DataValidationError, TrainingDivergedError

UPSTREAM = ["TFDSExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator"]


# --- Configuration: one line naming key, value and what is allowed; exit status 2; nothing touched.

CONFIG_CASES = [
    (["model.sparsity_target=0"], ["model.sparsity_target=0", "> 0.0 and < 1.0"]),
    (["model.sparsity_target=1.5"], ["model.sparsity_target=1.5", "> 0.0 and < 1.0"]),
    (["model.sparsity_weight=-1"], ["model.sparsity_weight=-1", ">= 0.0"]),
    (["model.latent_dim=0"], ["model.latent_dim=0", "> 0"]),
    (["model.batch_size=0"], ["model.batch_size=0", "> 0"]),
    (["model.hidden_dims=128,0"], ["model.hidden_dims=[128, 0]", "every size must be > 0"]),
    (["gate.psnr_threshold=abc"], ["gate.psnr_threshold='abc'", "valid number", "allowed: float"]),
    (["gate.psnr_threshold=nan"], ["gate.psnr_threshold='nan'", "finite number"]),
    (["model.learning_rate=inf"], ["model.learning_rate='inf'", "finite number", "> 0.0"]),
    (["model.sparsity=0.1"], ["unknown key 'model.sparsity'", "sparsity_target"]),
    (
        ["serving_dir=out/models", "pipeline_root=out/models/"],
        ["serving_dir='out/models' and pipeline_root='out/models/' conflict", "allowed: two different folders"],
    ),
]


@pytest.mark.parametrize(
    "overrides, fragments",
    CONFIG_CASES,
    ids=[
        "rho-0",
        "rho-1.5",
        "negative-beta",
        "latent-0",
        "batch-0",
        "hidden-0",
        "threshold-abc",
        "threshold-nan",
        "learning-rate-inf",
        "unknown-key",
        "serving-dir-is-pipeline-root",
    ],
)
def test_bad_config_is_one_line_exit_2_and_touches_nothing(tmp_path, monkeypatch, capsys, overrides, fragments):
    """The CLI's own main() in this process (the next test runs the installed command)."""
    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    status = main(["pipeline", "run", "--dataset", "garment_shapes/small", *sum((["--set", o] for o in overrides), [])])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("sparse-ae: error: "), err
    for fragment in fragments:
        assert fragment in err
    assert os.listdir(tmp_path) == []  # no pipeline root, no serving directory


@pytest.mark.slow  # two `sparse-ae` processes
def test_bad_config_through_the_command_and_debug(tmp_path):
    result = run_cli("pipeline", "run", "--set", "gate.psnr_threshold=abc", cwd=str(tmp_path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "sparse-ae: error: gate.psnr_threshold='abc': Input should be a valid number, unable to "
        "parse string as a number (allowed: float)\n"
    )
    result = run_cli("--debug", "pipeline", "run", "--set", "model.latent_dim=0", cwd=str(tmp_path))
    assert result.returncode == 2  # the same status as without --debug, the traceback added
    assert "Traceback" in result.stderr and "ConfigError: model.latent_dim=0" in result.stderr
    assert os.listdir(tmp_path) == []


# --- Pipeline faults on one pipeline root that already serves a model.


def records(metadata: str) -> dict:
    """What must not change: Models, blessed ModelBlessings, PushedModels that claim a push."""
    store = open_store(metadata)
    return {
        "models": sorted(a.id for a in store.get_artifacts_by_type("Model")),
        "blessed": sorted(
            a.id for a in store.get_artifacts_by_type("ModelBlessing") if a.custom_properties["blessed"].int_value
        ),
        "pushed": sorted(
            a.id for a in store.get_artifacts_by_type("PushedModel") if a.custom_properties["pushed"].int_value
        ),
    }


@pytest.fixture(scope="module")
def live(garment_data_dir, tmp_path_factory):
    """A pipeline root whose first run pushed a model (the state every fault must leave alone)."""
    root = str(tmp_path_factory.mktemp("bad_input"))
    overrides, config = served_pipeline_root(root, garment_data_dir)
    summary = summarize_run(config.resolved_metadata_path, config.pipeline_name)
    assert summary.pushed_path and not summary.failure
    return {"root": root, "overrides": overrides, "config": config}


def run_fault(live, overrides: list, error: type):
    """Run the pipeline with extra overrides, expecting error; (message, summary) after checking
    that nothing served or recorded as blessed or pushed changed, and that ML Metadata has the run."""
    config = live["config"]
    metadata, serving = config.resolved_metadata_path, config.serving_dir
    before, records_before = tree(serving), records(metadata)
    with pytest.raises(error) as caught:
        run_local(load_config(live["overrides"] + overrides))
    assert tree(serving) == before and tree(serving)  # a model is served, byte for byte the same
    assert records(metadata) == records_before
    summary = summarize_run(metadata, config.pipeline_name)  # the store still opens; the failed run is on record
    assert summary.blessed is None and summary.pushed_path is None
    text = format_summary(summary)
    assert f"Failed at {summary.failure}" in text and "Pushed: no" in text
    return str(caught.value), summary


def copy_dataset(garment_data_dir: str, target) -> str:
    """A copy of the prepared garment_shapes/small data_dir; returns the folder holding its shards."""
    shutil.copytree(os.path.join(garment_data_dir, "garment_shapes"), os.path.join(target, "garment_shapes"))
    (version,) = glob.glob(os.path.join(target, "garment_shapes", "small", "*"))
    return version


def shard(folder: str, split: str) -> str:
    (path,) = glob.glob(os.path.join(folder, f"garment_shapes-{split}.tfrecord-*"))
    return path


def rewrite(path: str, edit) -> None:
    """Rewrite a TFRecord shard record by record: edit(index, tf.train.Example) changes it in
    place, or returns False to drop it. The file stays well formed (valid lengths and checksums)."""
    examples = [tf.train.Example.FromString(record.numpy()) for record in tf.data.TFRecordDataset(path)]
    with tf.io.TFRecordWriter(path) as writer:
        for index, example in enumerate(examples):
            if edit(index, example) is not False:
                writer.write(example.SerializeToString())


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def truncate_mid_record(folder):
    path = shard(folder, "train")
    os.truncate(path, os.path.getsize(path) // 2)


def truncate_at_record_boundary(folder):
    """Whole records missing: the file reads cleanly, only the count shows it."""
    rewrite(shard(folder, "train"), lambda index, example: index < 1500)


def corrupt_bytes(folder):
    path = shard(folder, "test")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2 : len(data) // 2 + 8] = b"\xff" * 8
    open(path, "wb").write(bytes(data))


def missing_shard(folder):
    os.remove(shard(folder, "test"))


def empty_split(folder):
    """The test split emptied consistently: no records, and dataset_info.json says 0."""
    os.truncate(shard(folder, "test"), 0)
    info_path = os.path.join(folder, "dataset_info.json")
    info = json.load(open(info_path))
    for split in info["splits"]:
        if split["name"] == "test":
            split.update(shardLengths=["0"], numBytes="0")
    json.dump(info, open(info_path, "w"))


def image_of_wrong_shape(folder):
    def edit(index, example):
        if index == 1234:
            example.features.feature["image"].bytes_list.value[0] = png(np.full((27, 27), 200, np.uint8))

    rewrite(shard(folder, "train"), edit)


def label_out_of_range(folder):
    def edit(index, example):
        if index == 1500:
            example.features.feature["label"].int64_list.value[0] = 12

    rewrite(shard(folder, "train"), edit)


DATA_FAULTS = [
    (
        truncate_mid_record,
        [
            "split 'train' (TFX split 'train'), shard garment_shapes-train.tfrecord-00000-of-00001: "
            "unreadable at record 999",
            "truncated record",
            "corrupt or truncated",
            "sparse-ae prepare --dataset garment_shapes/small",
        ],
    ),
    (
        truncate_at_record_boundary,
        ["shard garment_shapes-train.tfrecord-00000-of-00001: 1500 records where dataset_info.json says 2000"],
    ),
    (
        corrupt_bytes,
        [
            "split 'test' (TFX split 'eval'), shard garment_shapes-test.tfrecord-00000-of-00001: "
            "unreadable at record 252 (corrupted record"
        ],
    ),
    (empty_split, ["split 'test' (TFX split 'eval') is empty: 0 examples in dataset_info.json"]),
    (
        missing_shard,
        [
            "split 'test' (TFX split 'eval'): shard ",
            "garment_shapes-test.tfrecord-00000-of-00001 is missing",
            "sparse-ae prepare --dataset garment_shapes/small",
        ],
    ),
    (
        image_of_wrong_shape,
        [
            "split 'train' (TFX split 'train'), shard garment_shapes-train.tfrecord-00000-of-00001, "
            "record 1234: image of shape (27, 27, 1); allowed: shape (28, 28, 1)"
        ],
    ),
    (
        label_out_of_range,
        [
            "shard garment_shapes-train.tfrecord-00000-of-00001, record 1500: label 12; "
            "allowed: 0..9 (the 10 classes of 'label')"
        ],
    ),
]


@pytest.mark.e2e
@pytest.mark.parametrize("damage, fragments", DATA_FAULTS, ids=[fault.__name__ for fault, _ in DATA_FAULTS])
def test_damaged_dataset_stops_the_run_in_example_gen(live, garment_data_dir, tmp_path, damage, fragments):
    damage(copy_dataset(garment_data_dir, tmp_path))
    message, summary = run_fault(live, [f"dataset.data_dir={tmp_path}"], DataValidationError)
    assert summary.components == [("TFDSExampleGen", "failed")]
    assert summary.failure == f"TFDSExampleGen: DataValidationError: {message}"
    assert message.startswith("garment_shapes/small/1.0.0 ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.fixture(scope="module")
def float_dataset(garment_data_dir, tmp_path_factory):
    """garment_shapes/small as a dataset of float32 images (a TFDS folder dataset, no builder code), with
    NaN and infinity in two train records: what a float pipeline upstream can leave. Returns its data_dir."""
    data_dir = str(tmp_path_factory.mktemp("floats"))
    folder = os.path.join(data_dir, "garment_floats", "1.0.0")
    os.makedirs(folder)
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.float32),
            "label": tfds.features.ClassLabel(num_classes=10),
        }
    )
    source = tfds.builder("garment_shapes/small", data_dir=garment_data_dir)
    for split in ("train", "test"):
        with tf.io.TFRecordWriter(os.path.join(folder, f"garment_floats-{split}.tfrecord-00000-of-00001")) as writer:
            for index, example in enumerate(tfds.as_numpy(source.as_dataset(split=split, shuffle_files=False))):
                image = example["image"].astype(np.float32)
                if split == "train" and index in (7, 9):
                    image[3, 4, 0] = np.nan if index == 7 else np.inf
                writer.write(features.serialize_example({"image": image, "label": example["label"]}))
    tfds.folder_dataset.write_metadata(data_dir=folder, features=features)
    return data_dir


@pytest.mark.e2e
def test_nan_pixels_stop_the_run_in_example_gen(live, float_dataset):
    message, summary = run_fault(
        live, ["dataset.name=garment_floats", f"dataset.data_dir={float_dataset}"], DataValidationError
    )
    assert summary.components == [("TFDSExampleGen", "failed")]
    assert message == (
        "garment_floats/1.0.0 split 'train' (TFX split 'train'), shard "
        "garment_floats-train.tfrecord-00000-of-00001, record 7: pixel value nan; allowed: whole "
        "numbers in [0, 255] (uint8 pixels) (1 more in records 0-1023)"
    )


@pytest.mark.slow  # its fixture writes a float copy of the whole dataset
def test_pixel_checks_name_the_first_bad_record(float_dataset):
    """The per-batch checks for what float or wide integer images can hold (no pipeline run)."""
    from components.tfds_example_gen.checks import ShardReader

    reader = ShardReader(
        tfds.builder("garment_floats", data_dir=float_dataset), "train", "train", "image", "label", (28, 28, 1), 1024
    )
    for value, found in (
        (np.inf, "pixel value inf"),
        (300.0, "pixel value 300.0"),
        (0.5, "pixel value 0.5"),
        (-1.0, "pixel value -1.0"),
    ):
        images = np.zeros((4, 28, 28, 1), np.float32)
        images[2, 0, 0, 0] = value
        with pytest.raises(DataValidationError, match=rf"shard s, record 12: {found}; allowed: whole numbers"):
            reader.check({"image": images, "label": np.zeros(4, np.int64)}, "s", 10)
    reader.check({"image": np.full((4, 28, 28, 1), 255, np.int32), "label": np.arange(4)}, "s", 0)  # all valid


@pytest.mark.e2e
def test_wrong_image_shape_for_the_model_stops_before_reading(live):
    message, summary = run_fault(live, ["model.image_shape=32,32,3"], DataValidationError)
    assert summary.components == [("TFDSExampleGen", "failed")]
    assert message == (
        "garment_shapes/small/1.0.0: images are (28, 28, 1), the pipeline expects (32, 32, 3) "
        "(model.image_shape); set model.image_shape=28,28,1 or use a dataset of that shape"
    )


@pytest.mark.e2e
def test_absent_dataset_offline_stops_the_run_in_example_gen(live, tmp_path):
    message, summary = run_fault(live, [f"dataset.data_dir={tmp_path}/nothing"], DatasetUnavailableError)
    assert summary.components == [("TFDSExampleGen", "failed")]
    assert f"not prepared in data_dir='{tmp_path}/nothing' and download is off" in summary.failure
    assert "sparse-ae prepare --dataset garment_shapes/small" in message


@pytest.mark.e2e
def test_blank_images_are_an_anomaly_that_stops_the_run_before_training(live, garment_data_dir, tmp_path):
    """Valid records (ExampleGen passes them) whose eval images are all blank: a model would
    reconstruct them perfectly and pass any PSNR gate. ExampleValidator's statistics see it."""
    blank = png(np.zeros((28, 28), np.uint8))

    def edit(index, example):
        example.features.feature["image"].bytes_list.value[0] = blank

    rewrite(shard(copy_dataset(garment_data_dir, tmp_path), "test"), edit)
    message, summary = run_fault(live, [f"dataset.data_dir={tmp_path}"], DataValidationError)
    states = dict(summary.components)
    assert [states[node] for node in UPSTREAM] == ["complete"] * 3 + ["failed"]
    assert not {"Trainer", "Evaluator", "ServingPusher"} & set(states)  # the Resolver alone may have run
    assert message == (
        "1 data anomaly: eval: image: every pixel of the split has one value: blank images; "
        "nothing is trained or pushed on this data"
    )


@pytest.mark.e2e
def test_diverging_training_stops_in_the_trainer(live):
    message, summary = run_fault(live, ["model.learning_rate=1e20"], TrainingDivergedError)
    states = dict(summary.components)
    assert [states[node] for node in UPSTREAM] == ["cached"] * 4 and states["Trainer"] == "failed"
    assert "Evaluator" not in states and "ServingPusher" not in states
    assert message.startswith("training diverged: the loss became NaN/inf at epoch 1, step ")
    assert "lower learning_rate (now 1e+20) or sparsity_weight" in message
    assert summary.failure == f"Trainer: TrainingDivergedError: {message}"


@pytest.mark.e2e
def test_data_fault_through_the_cli_exit_1_one_line_no_traceback(live, garment_data_dir, tmp_path):
    label_out_of_range(copy_dataset(garment_data_dir, tmp_path / "tfds"))
    serving = live["config"].serving_dir
    before = tree(serving)
    result = run_cli(
        "pipeline",
        "run",
        *sum((["--set", item] for item in live["overrides"] + [f"dataset.data_dir={tmp_path}/tfds"]), []),
        cwd=str(tmp_path),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    reason = (
        "DataValidationError: garment_shapes/small/1.0.0 split 'train' (TFX split 'train'), shard "
        "garment_shapes-train.tfrecord-00000-of-00001, record 1500: label 12; allowed: 0..9 "
        "(the 10 classes of 'label')"
    )
    assert result.stderr.strip().splitlines()[-1] == reason
    assert f"Failed at TFDSExampleGen: {reason}" in result.stdout and "Pushed: no" in result.stdout
    assert tree(serving) == before
