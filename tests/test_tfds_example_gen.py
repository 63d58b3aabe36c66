"""TFDSExampleGen's parts: record encoding, identity in its parameters, clear failure offline."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tfx.types import standard_artifacts

from components.tfds_example_gen import TFDSExampleGen
from components.tfds_example_gen.executor import Executor, batch_to_examples
from sparse_ae.errors import DatasetUnavailableError, DataValidationError


def example_gen_inputs(uri: str, dataset: str, data_dir: str, split_mapping: dict) -> tuple:
    """(the Examples artifact at uri, the executor's properties) for a run offline."""
    examples = standard_artifacts.Examples()
    examples.uri = uri
    properties = {
        "dataset": dataset,
        "version": "",
        "data_dir": data_dir,
        "split_mapping": json.dumps(split_mapping),
        "download": 0,
        "image_key": "image",
        "label_key": "label",
    }
    return examples, properties


def test_batch_to_examples_round_trips_image_and_label():
    images = np.random.RandomState(0).randint(0, 256, size=(3, 28, 28, 1)).astype(np.uint8)
    records = batch_to_examples({"image": images, "label": np.array([4, 0, 9])}, "image", "label")
    for record, image, label in zip(records, images, [4, 0, 9], strict=False):
        feature = tf.train.Example.FromString(record).features.feature
        np.testing.assert_array_equal(np.array(feature["image"].int64_list.value, np.uint8), image.reshape(-1))
        assert list(feature["label"].int64_list.value) == [label]


def test_dataset_identity_is_part_of_the_execution_properties():
    """Caching compares execution properties: another dataset, version or mapping never reuses examples."""
    component = TFDSExampleGen(
        dataset="garment_shapes/small",
        version="1.0.0",
        data_dir="/data/tfds",
        split_mapping={"train": "train", "test": "eval"},
    )
    properties = component.exec_properties
    assert properties["dataset"] == "garment_shapes/small" and properties["version"] == "1.0.0"
    assert properties["data_dir"] == "/data/tfds"
    assert json.loads(properties["split_mapping"]) == {"train": "train", "test": "eval"}
    other = TFDSExampleGen(dataset="garment_shapes/full", data_dir="/data/tfds")
    assert other.exec_properties != properties


def test_split_mapping_must_name_distinct_tfx_splits():
    with pytest.raises(ValueError, match="distinct"):
        TFDSExampleGen(dataset="x", split_mapping={"train": "train", "test": "train"})


def test_unprepared_dataset_offline_names_dataset_dir_and_remedy(tmp_path):
    examples, properties = example_gen_inputs(
        str(tmp_path / "examples"), "fashion_mnist", str(tmp_path / "tfds"), {"train": "train", "test": "eval"}
    )
    with pytest.raises(DatasetUnavailableError) as caught:
        Executor().Do({}, {"examples": [examples]}, properties)
    message = str(caught.value)
    assert "fashion_mnist" in message and str(tmp_path / "tfds") in message and "sparse-ae prepare" in message


def test_sliced_splits_are_written_in_full(garment_data_dir, tmp_path):
    """A TFDS slice ('train[:300]') is read example by example and batched again."""
    import glob
    import os

    examples, properties = example_gen_inputs(
        str(tmp_path / "examples"),
        "garment_shapes/small",
        garment_data_dir,
        {"train[:300]": "train", "test[:10%]": "eval"},
    )
    Executor().Do({}, {"examples": [examples]}, properties)
    counts = {
        split: sum(
            1
            for _ in tf.data.TFRecordDataset(
                glob.glob(os.path.join(examples.uri, f"Split-{split}", "*.gz")), compression_type="GZIP"
            )
        )
        for split in ("train", "eval")
    }
    assert counts == {"train": 300, "eval": 50}
    assert json.loads(examples.split_names) == ["train", "eval"]


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_encoding_equals_the_protobuf_library(dtype):
    """tfx_bsl's encoder yields exactly the tf.Example the protobuf library builds, byte for byte
    up to the order of the two map entries.

    The order is free: protobuf's default C++ serialization, like tfx_bsl's encoder, writes a
    map's entries in per-map hash order, so two encodings of one message list `image` and
    `label` in either order (deterministic=True sorts them).
    """
    rng = np.random.RandomState(1)
    images = rng.randint(0, 256, size=(50, 28, 28, 1)).astype(dtype)
    images[0] = 0
    images[1] = 255  # all two-byte varints
    labels = np.concatenate([[0, 9, 127, 128, 300], rng.randint(0, 10, 45)])
    records = batch_to_examples({"image": images, "label": labels}, "image", "label")
    assert len(records) == len(images)
    for record, image, label in zip(records, images, labels, strict=False):
        features = {
            "image": tf.train.Feature(int64_list=tf.train.Int64List(value=image.reshape(-1).astype(np.int64))),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        }
        expected = tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(deterministic=True)
        # each map entry alone, as protobuf serializes it; the message is a header and both entries
        entries = [tf.train.Features(feature={key: value}).SerializeToString() for key, value in features.items()]
        header = expected[: len(expected) - sum(map(len, entries))]
        assert expected == header + entries[0] + entries[1]
        assert record in (expected, header + entries[1] + entries[0])


def test_a_shard_that_breaks_the_contract_leaves_no_file_behind(tmp_path):
    """One record of the train shard has a label outside its classes: the executor fails naming it,
    and the train split holds no file (no partial examples for a rerun to trip over); the eval
    split, whose shard is sound, is written in full under the sink's usual name."""
    import glob
    import os

    folder = tmp_path / "data" / "bad_labels" / "1.0.0"
    folder.mkdir(parents=True)
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
        }
    )
    for split, bad_record in (("train", 3), ("test", None)):
        with tf.io.TFRecordWriter(str(folder / f"bad_labels-{split}.tfrecord-00000-of-00001")) as writer:
            for index in range(8):
                example = tf.train.Example.FromString(
                    features.serialize_example({"image": np.full((28, 28, 1), index, np.uint8), "label": index})
                )
                if index == bad_record:
                    example.features.feature["label"].int64_list.value[0] = 12
                writer.write(example.SerializeToString())
    tfds.folder_dataset.write_metadata(data_dir=str(folder), features=features)
    examples, properties = example_gen_inputs(
        str(tmp_path / "examples"), "bad_labels", str(tmp_path / "data"), {"train": "train", "test": "eval"}
    )
    with pytest.raises(DataValidationError, match=r"record 3: label 12; allowed: 0\.\.9"):
        Executor().Do({}, {"examples": [examples]}, properties)
    assert glob.glob(os.path.join(examples.uri, "Split-train", "*")) == []
    (written,) = glob.glob(os.path.join(examples.uri, "Split-eval", "*"))
    assert os.path.basename(written) == "data_tfrecord-00000-of-00001.gz"
    assert sum(1 for _ in tf.data.TFRecordDataset(written, compression_type="GZIP")) == 8


def test_batched_parsing_reads_exactly_what_tfds_reads(garment_data_dir):
    """The shard reader parses whole batches of records with TFDS's specs and decodes them with
    TFDS's decode_batch_example: the same arrays, record for record, as TFDS's own as_dataset
    (PNG-encoded images and class labels, on a sliced split)."""
    from components.tfds_example_gen.checks import ShardReader
    from sparse_ae.data import tfds_builder

    builder = tfds_builder("garment_shapes/small", data_dir=garment_data_dir, download=False)
    reader = ShardReader(builder, "train[10:700]", "train", "image", "label", (28, 28, 1), 256)
    assert set(reader.specs) == {"image", "label"}  # the batched path is the one taken
    compared = 0
    for instruction in builder.info.splits["train[10:700]"].file_instructions:
        batched = list(tfds.as_numpy(reader._batches(instruction)))
        by_record = list(tfds.as_numpy(reader._records(instruction).batch(256)))
        for key in ("image", "label"):
            ours = np.concatenate([batch[key] for batch in batched])
            theirs = np.concatenate([batch[key] for batch in by_record])
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            np.testing.assert_array_equal(ours, theirs)
        compared += len(theirs)
    assert compared == 690
