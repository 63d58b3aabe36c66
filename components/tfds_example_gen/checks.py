"""What TFDSExampleGen checks, before and while it writes examples: the earliest place bad data shows.

The contract: every mapped split has examples; every shard that dataset_info.json lists exists,
reads without checksum errors and holds as many records as dataset_info.json says; every image
has the expected shape (`image_shape`, else the one the dataset declares); every pixel is a
whole number in [0, 255] (the examples carry pixels as int64 and the model scales 0..255 to
[-1, 1], so NaN, infinity, fractions and 16-bit values would silently turn into garbage); every
label of a ClassLabel feature is one of its classes. A breach raises DataValidationError naming
the dataset, the split, the shard and record (counted from 0 in the shard), what was found and
what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_parser

from sparse_ae.data import prepare_command
from sparse_ae.errors import DataValidationError

PIXEL_RANGE = (0, 255)
ERRORS = "data_errors"  # the readers' tagged output of messages


def _first_line(error: BaseException) -> str:
    """A TensorFlow error's own words, without the op and function names it adds."""
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\].*$", "", text.strip().splitlines()[0] if text.strip() else "")
    return text.strip() or type(error).__name__


def _reprepare(builder: tfds.core.DatasetBuilder) -> str:
    """The remedy for damaged files: the dataset's own prepare command."""
    name = builder.name + (f"/{builder.builder_config.name}" if builder.builder_config else "")
    command = prepare_command(name, builder.data_dir_root)
    return f"prepare it again (`{command}`) or copy it again from where it was prepared"


def check_declared(
    builder: tfds.core.DatasetBuilder,
    mapping: Mapping[str, str],
    image_key: str,
    label_key: str,
    image_shape: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """The checks that need no reading (features, shapes, empty splits, missing shards); returns the
    shape every image must have."""
    name, features = builder.info.full_name, builder.info.features
    for key in (image_key, label_key):
        if key not in features:
            raise DataValidationError(f"{name} has no feature {key!r} (it has {sorted(features.keys())})")
    declared = tuple(features[image_key].shape)
    expected = tuple(int(size) for size in image_shape) if image_shape else declared
    if None in expected:
        raise DataValidationError(
            f"{name}: images of variable shape {declared} and no image_shape to check them "
            f"against (the pipeline passes model.image_shape)"
        )
    mismatched = any(d is not None and d != e for d, e in zip(declared, expected, strict=False))
    if len(declared) != len(expected) or mismatched:
        raise DataValidationError(
            f"{name}: images are {declared}, the pipeline expects {expected} (model.image_shape); "
            f"set model.image_shape={','.join(str(size) for size in declared)} or use a dataset of that shape"
        )
    for key in (image_key, label_key):
        dtype = np.dtype(features[key].np_dtype)
        if not (np.issubdtype(dtype, np.number) and (key == image_key or np.issubdtype(dtype, np.integer))):
            allowed = "numbers (whole, in [0, 255])" if key == image_key else "integers"
            raise DataValidationError(f"{name}: feature {key!r} has dtype {dtype}; allowed: {allowed}")
    for tfds_split, tfx_split in mapping.items():
        split = builder.info.splits[tfds_split]
        if split.num_examples == 0:
            raise DataValidationError(
                f"{name} split {tfds_split!r} (TFX split {tfx_split!r}) is empty: 0 examples in dataset_info.json; "
                f"every mapped split needs examples (train: training, eval: validation and the gate)"
            )
        for instruction in split.file_instructions:
            if not tf.io.gfile.exists(instruction.filename):
                raise DataValidationError(
                    f"{name} split {tfds_split!r} (TFX split {tfx_split!r}): shard "
                    f"{instruction.filename} is missing; {_reprepare(builder)}"
                )
    return expected


def _readable_records(filename: str) -> int:
    """How many records of a TFRecord file read before the first checksum or length error."""
    count = 0
    try:
        for _ in tf.data.TFRecordDataset(filename):
            count += 1
    except tf.errors.DataLossError:
        pass
    return count


def batch_parse_specs(builder: tfds.core.DatasetBuilder, keys: Sequence[str]) -> dict[str, Any] | None:
    """TFDS's own tf.Example specs of the features `keys`, where a batch of records can be parsed at
    once: TFRecord shards, each feature a fixed-size tensor (an encoded image, a label, a pixel
    array); None for anything else (array_record files, sequences, ragged or nested features)."""
    if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
        return None
    specs = {}
    for key in keys:
        info = builder.info.features[key].get_serialized_info()
        if not isinstance(info, tfds.features.TensorInfo) or info.sequence_rank or None in info.shape:
            return None
        specs[key] = example_parser.ExampleParser({key: info}).flat_feature_specs[key]
        if not isinstance(specs[key], tf.io.FixedLenFeature):
            return None
    return specs


class ShardReader:
    """Reads one TFDS shard (a FileInstruction) as checked batches of numpy arrays.

    Where it can (batch_parse_specs), a whole batch of records is parsed at once with TFDS's own
    specs and decoded with each feature's `decode_batch_example` (TFDS's batch decoding, the one
    it uses for Sequence features): about 3x faster than `as_dataset`, which parses and decodes
    one record at a time (docs/benchmarks.md, "One-off measurements"); else through
    `as_dataset`. Either way the arrays are TFDS's.

    TFDS decodes images with a static shape it does not check, so a 27x27 image in a 28x28
    dataset fails inside tf.data's batching without saying which record it is; such a batch is
    read again record by record (only then) to name it.
    """

    def __init__(
        self,
        builder: tfds.core.DatasetBuilder,
        tfds_split: str,
        tfx_split: str,
        image_key: str,
        label_key: str,
        expected_shape: tuple[int, ...],
        batch_size: int,
    ):
        self.builder, self.image_key, self.label_key = builder, image_key, label_key
        self.expected, self.batch_size = tuple(expected_shape), batch_size
        self.where = f"{builder.info.full_name} split {tfds_split!r} (TFX split {tfx_split!r})"
        self.num_classes = getattr(builder.info.features[label_key], "num_classes", None)
        self.specs = batch_parse_specs(builder, [image_key, label_key])

    def _batches(self, instruction) -> tf.data.Dataset:
        """The shard's records (its skip and take applied) as batches of decoded features."""
        if self.specs is None:
            return self._records(instruction).batch(self.batch_size)
        features = self.builder.info.features

        def decode(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            decoded = {}
            for key, values in tf.io.parse_example(serialized, self.specs).items():
                info = features[key].get_serialized_info()
                values = tf.reshape(values, [-1, *info.shape])  # as TFDS restores them, batched
                if values.dtype != info.tf_dtype:
                    values = tf.cast(values, info.tf_dtype)
                decoded[key] = features[key].decode_batch_example(values)
            return decoded

        records = tf.data.TFRecordDataset(instruction.filename)
        if instruction.skip > 0:
            records = records.skip(instruction.skip)
        if not instruction.takes_all:
            records = records.take(instruction.take)
        return records.batch(self.batch_size).map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    def _records(self, instruction, decoders: dict | None = None) -> tf.data.Dataset:
        info = tfds.core.naming.FilenameInfo.from_str(instruction.filename)
        dataset = self.builder.as_dataset(
            split=f"{info.split}[{info.shard_index}shard]", shuffle_files=False, decoders=decoders
        )
        if instruction.skip > 0:
            dataset = dataset.skip(instruction.skip)
        return dataset if instruction.takes_all else dataset.take(instruction.take)

    def __call__(self, instruction) -> Iterator[Any]:
        """The shard's batches, or (tagged ERRORS) the message of its first breach of the contract.

        A message rather than an exception: Beam workers would log its traceback, and remote
        runners return it as text; the executor raises it once Beam is done (raise_data_errors).
        """
        try:
            yield from self._read(instruction)
        except DataValidationError as error:
            yield beam.pvalue.TaggedOutput(ERRORS, str(error))

    def _read(self, instruction) -> Iterator[dict[str, np.ndarray]]:
        shard = os.path.basename(instruction.filename)
        batches = iter(tfds.as_numpy(self._batches(instruction).prefetch(tf.data.AUTOTUNE)))
        read = 0
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except tf.errors.DataLossError as error:
                raise DataValidationError(
                    f"{self.where}, shard {shard}: unreadable at record {_readable_records(instruction.filename)} "
                    f"({_first_line(error)}): the file is corrupt or truncated; {_reprepare(self.builder)}"
                ) from None
            except tf.errors.FailedPreconditionError as error:  # TFDS counts each shard's records too
                raise self._short(instruction, shard) or DataValidationError(
                    f"{self.where}, shard {shard}: {_first_line(error)}"
                ) from None
            except tf.errors.InvalidArgumentError as error:  # images of different shapes, or undecodable
                raise DataValidationError(
                    f"{self.where}, shard {shard}, {self._diagnose(instruction, read, error)}"
                ) from None
            self.check(batch, shard, instruction.skip + read)
            read += len(batch[self.label_key])
            yield batch
        if read != instruction.take:
            raise self._short(instruction, shard) or DataValidationError(
                f"{self.where}, shard {shard}: {read} records read where {instruction.take} were expected"
            )

    def _short(self, instruction, shard: str) -> DataValidationError | None:
        """The error for a shard holding another number of records than dataset_info.json says, if it does."""
        found = _readable_records(instruction.filename)
        if found == instruction.examples_in_shard:
            return None
        return DataValidationError(
            f"{self.where}, shard {shard}: {found} records where dataset_info.json says "
            f"{instruction.examples_in_shard}: the file is truncated or was replaced; {_reprepare(self.builder)}"
        )

    def _diagnose(self, instruction, offset: int, error: Exception) -> str:
        """The first record of a failed batch that has the wrong shape or cannot be decoded."""
        feature = self.builder.info.features[self.image_key]
        encoded = isinstance(feature, tfds.features.Image)  # decode it here: TFDS would not show the true shape
        records = self._records(instruction, {self.image_key: tfds.decode.SkipDecoding()} if encoded else None)
        records = iter(records.skip(offset).take(self.batch_size))
        for index in range(instruction.skip + offset, instruction.skip + offset + self.batch_size):
            try:
                image = next(records)[self.image_key]
                if encoded:
                    image = tf.io.decode_image(
                        image, channels=self.expected[-1], dtype=feature.tf_dtype, expand_animations=False
                    )
            except StopIteration:
                break
            except tf.errors.InvalidArgumentError as failure:
                return f"record {index}: cannot be decoded ({_first_line(failure)}); {_reprepare(self.builder)}"
            if tuple(image.shape) != self.expected:
                return f"record {index}: image of shape {tuple(image.shape)}; allowed: shape {self.expected}"
        return f"records from {instruction.skip + offset}: {_first_line(error)}"

    def check(self, batch: dict[str, np.ndarray], shard: str, first: int) -> None:
        """Raise for the first record of the batch that breaks the contract (shape, pixels, label)."""
        images, labels = batch[self.image_key], np.asarray(batch[self.label_key]).reshape(-1)
        if tuple(images.shape[1:]) != self.expected:  # every image of the batch has the same wrong shape
            raise DataValidationError(
                f"{self.where}, shard {shard}, record {first}: image of shape "
                f"{tuple(images.shape[1:])}; allowed: shape {self.expected}"
            )
        if images.dtype != np.uint8:  # uint8 pixels cannot break the contract
            flat = images.reshape(len(images), -1)
            allowed = f"whole numbers in [{PIXEL_RANGE[0]}, {PIXEL_RANGE[1]}] (uint8 pixels)"
            if np.issubdtype(flat.dtype, np.floating):
                finite = np.isfinite(flat)
                self._raise_first(
                    ~finite.all(axis=1),
                    shard,
                    first,
                    lambda i: f"pixel value {flat[i][~finite[i]][0]}",
                    allowed,
                )
                fraction = flat != np.round(flat)
                self._raise_first(
                    fraction.any(axis=1),
                    shard,
                    first,
                    lambda i: f"pixel value {flat[i][fraction[i]][0]}",
                    allowed,
                )
            outside = (flat < PIXEL_RANGE[0]) | (flat > PIXEL_RANGE[1])
            self._raise_first(
                outside.any(axis=1), shard, first, lambda i: f"pixel value {flat[i][outside[i]][0]}", allowed
            )
        if self.num_classes is not None:
            wrong = (labels < 0) | (labels >= self.num_classes)
            self._raise_first(
                wrong,
                shard,
                first,
                lambda i: f"{self.label_key} {labels[i]}",
                f"0..{self.num_classes - 1} (the {self.num_classes} classes of {self.label_key!r})",
            )

    def _raise_first(self, bad: np.ndarray, shard: str, first: int, found, allowed: str) -> None:
        if not bad.any():
            return
        index = int(np.argmax(bad))
        more = int(bad.sum()) - 1
        also = f" ({more} more in records {first}-{first + len(bad) - 1})" if more else ""
        raise DataValidationError(
            f"{self.where}, shard {shard}, record {first + index}: {found(index)}; allowed: {allowed}{also}"
        )


def raise_data_errors(folder: str) -> None:
    """Raise the messages the readers wrote under folder (one DataValidationError); remove the folder."""
    messages = []
    for path in sorted(tf.io.gfile.glob(os.path.join(folder, "*"))):
        with tf.io.gfile.GFile(path) as handle:
            messages += [line.strip() for line in handle if line.strip()]
    tf.io.gfile.rmtree(folder)
    if messages:
        messages.sort()
        more = f" (and {len(messages) - 1} more shard(s) with problems)" if len(messages) > 1 else ""
        raise DataValidationError(messages[0] + more)
