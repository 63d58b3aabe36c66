"""Batch anomaly scoring with a shipped SavedModel: images in, one row per image out.

Sources are read in batches and never held whole (memory is flat in the number of images): a TFDS
split, a folder of PNG/JPEG files, or gzipped TFRecords of tf.Examples as the pipeline writes them.
An image the model cannot take (unreadable, wrong size or channels, pixels outside 0..255) is
skipped with a reason naming it, unless strict. Each batch goes through the SavedModel's
`reconstruct_uint8` signature (the same per-image MSE and PSNR the Evaluator averages); an image is
flagged when its MSE exceeds the calibration stored with the model (sparse_ae/calibration.py) or a
threshold given explicitly. No TFX: paths go through tf.io.gfile, so they may be remote.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import io
import json
import os
import re
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from sparse_ae.calibration import Calibration, read_calibration
from sparse_ae.config import DEFAULT_IMAGE_SHAPE
from sparse_ae.errors import ConfigError, DataValidationError
from sparse_ae.serving_layout import RECONSTRUCT_UINT8, is_complete, serving_versions, version_folders, version_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
WORST_COUNT = 16
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}  # the first bytes of each format


def companion_paths(output: str) -> tuple[str, str]:
    """(summary JSON, worst-reconstructions PNG) beside the rows file, named after its whole name so
    that scores.csv and scores.parquet keep their own."""
    return f"{output}.summary.json", f"{output}.worst.png"


def plain(message: str) -> str:
    """A TensorFlow error's first line without its internals ({{function_node ...}}, [Op:...])."""
    line = (message.strip().splitlines() or [""])[0]
    return re.sub(r"\{\{.*?\}\}|\[Op:[^\]]*\].*$", "", line).strip()


@dataclasses.dataclass
class Batch:
    """Images that can be scored (uint8, the model's shape), their ids and labels (None: none), and
    the images of this stretch of the source that cannot (id, reason)."""

    ids: list[str]
    images: np.ndarray
    labels: list[int | None]
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ScoreSummary:
    """What `score` found: counts, the threshold and where it came from, where the outputs went."""

    model_dir: str
    source: str
    count: int = 0
    flagged: int = 0
    threshold: float = 0.0
    threshold_source: str = ""
    skipped: int = 0
    skipped_examples: list[str] = dataclasses.field(default_factory=list)  # the first 20 "id: reason"
    output: str = ""
    worst_png: str | None = None
    mean_mse: float | None = None

    @property
    def rate(self) -> float:
        return self.flagged / self.count if self.count else 0.0

    def format(self) -> str:
        lines = [
            f"Scored {self.count} images from {self.source} with {self.model_dir}",
            f"Flagged {self.flagged} ({100 * self.rate:.2f}%) as anomalous: {self.threshold_source}",
            f"Rows: {self.output}",
        ]
        if self.worst_png:
            lines.append(f"Worst reconstructions: {self.worst_png}")
        if self.skipped:
            lines.append(f"Skipped {self.skipped} images the model cannot take:")
            lines += [f"  {line}" for line in self.skipped_examples]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Which model.
# ------------------------------------------------------------------------------------------------
def resolve_model_dir(serving_dir: str, version: int | None = None) -> str:
    """<serving_dir>/<version>: the live version (the highest complete one, as TF Serving serves)
    by default; ConfigError when absent or incomplete."""
    versions = serving_versions(serving_dir)
    if version is not None and version not in versions and version in version_folders(serving_dir):
        raise ConfigError(
            f"--version {version}: {version_path(serving_dir, version)} holds no saved_model.pb yet "
            f"(a copy in progress or an interrupted one)"
        )
    if not versions:
        raise ConfigError(
            f"no model version in serving_dir={serving_dir!r}: name the folder a pipeline pushed to "
            f"(--serving-dir DIR), push a model there first (`sparse-ae pipeline run`), or pass --model-dir"
        )
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise ConfigError(
            f"--version {version}: no such version in {serving_dir} (versions: {', '.join(map(str, versions))})"
        )
    return os.path.join(serving_dir, str(version))


class Scorer:
    """A loaded SavedModel's uint8 signature and the calibration stored with it."""

    def __init__(self, model_dir: str):
        if not is_complete(model_dir):
            raise ConfigError(f"no SavedModel in {model_dir!r}")
        self.model_dir = model_dir
        self._loaded = tf.saved_model.load(model_dir)
        self._signature = self._loaded.signatures[RECONSTRUCT_UINT8]
        self.calibration: Calibration | None = read_calibration(model_dir)
        shape = self.calibration.image_shape if self.calibration is not None else None
        self.image_shape: tuple[int, ...] = tuple(shape) if shape else DEFAULT_IMAGE_SHAPE

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """mse, psnr, latent and reconstruction (uint8) of a batch of uint8 images."""
        outputs = self._signature(images=tf.constant(images, tf.uint8))
        result = {key: value.numpy() for key, value in outputs.items()}
        from sparse_ae.data import to_uint8  # TFDS comes with it: imported when first needed

        result["reconstruction"] = to_uint8(result["reconstruction"])
        return result


# ------------------------------------------------------------------------------------------------
# Where the images come from: each yields Batches.
# ------------------------------------------------------------------------------------------------
def check_image(image: np.ndarray, shape: Sequence[int]) -> str | None:
    """Why the model cannot take image (None when it can)."""
    height, width, channels = shape
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        return f"expected a {height}x{width} image, got an array of shape {image.shape}"
    if image.shape[:2] != (height, width):
        return f"image is {image.shape[0]}x{image.shape[1]} pixels; the model takes {height}x{width}"
    if image.shape[2] != channels:
        return f"image has {image.shape[2]} channels; the model takes {channels} (grey-scale)"
    return None


def _batches_of(
    items: Iterator[tuple[str, np.ndarray | None, int | None, str | None]],
    shape: Sequence[int],
    batch_size: int,
) -> Iterator[Batch]:
    """Group (id, image, label, reason) items into Batches; an item with a reason is skipped."""
    batch = Batch([], np.zeros([0, *shape], np.uint8), [])
    images: list[np.ndarray] = []
    for item_id, image, label, reason in items:
        reason = reason or ("no image" if image is None else check_image(image, shape))
        if reason or image is None:
            batch.skipped.append((item_id, reason or "no image"))
            continue
        batch.ids.append(item_id)
        batch.labels.append(label)
        images.append(image.reshape(shape))
        if len(images) == batch_size:
            yield dataclasses.replace(batch, images=np.stack(images))
            batch, images = Batch([], np.zeros([0, *shape], np.uint8), []), []
    if images or batch.skipped:
        yield dataclasses.replace(batch, images=np.stack(images) if images else batch.images)


def tfds_batches(
    name: str,
    split: str,
    shape: Sequence[int],
    data_dir: str | None = None,
    download: bool = False,
    batch_size: int = 256,
) -> tuple[Iterator[Batch], int | None]:
    """Batches of a TFDS split (ids `split[index]`), and the split's size when TFDS knows it."""
    from sparse_ae.data import IMAGE_KEY, LABEL_KEY, tfds_builder

    builder = tfds_builder(name, data_dir=data_dir, download=download)
    try:
        total: int | None = builder.info.splits[split].num_examples
    except (KeyError, ValueError):
        total = None
    dataset = builder.as_dataset(split=split, shuffle_files=False).batch(batch_size)

    def batches() -> Iterator[Batch]:
        start = 0
        for item in dataset.as_numpy_iterator():
            images = item[IMAGE_KEY]
            labels = item[LABEL_KEY] if LABEL_KEY in item else [None] * len(images)
            ids = [f"{split}[{start + i}]" for i in range(len(images))]
            start += len(images)
            reason = check_image(images[0], shape)
            if reason:  # every image of a TFDS split has the same shape
                yield Batch([], np.zeros([0, *shape], np.uint8), [], [(i, reason) for i in ids])
            else:
                yield Batch(ids, images, [None if label is None else int(label) for label in labels])

    return batches(), total


def image_files(folder: str) -> list[str]:
    """PNG and JPEG files directly in folder, sorted by name."""
    if not tf.io.gfile.isdir(folder):
        raise ConfigError(f"--images {folder!r}: no such folder")
    return sorted(
        os.path.join(folder, name) for name in tf.io.gfile.listdir(folder) if name.lower().endswith(IMAGE_SUFFIXES)
    )


def decode_image_file(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """(the image, None), or (None, why not) in the project's words."""
    kind = next((kind for signature, kind in SIGNATURES.items() if data.startswith(signature)), None)
    if kind is None:
        return None, "not a PNG/JPEG image (the file starts with neither format's signature)"
    try:
        return tf.io.decode_image(data, expand_animations=False).numpy(), None
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError) as error:
        detail = plain(str(getattr(error, "message", error)))
        return None, f"a damaged {kind} image: it cannot be decoded" + (f" ({detail})" if detail else "")


def folder_batches(folder: str, shape: Sequence[int], batch_size: int = 256) -> tuple[Iterator[Batch], int | None]:
    """Batches of the PNG/JPEG files in folder (ids: the file names; no labels); undecodable files are skipped."""
    files = image_files(folder)

    def items():
        for path in files:
            with tf.io.gfile.GFile(path, "rb") as handle:
                image, reason = decode_image_file(handle.read())
            yield os.path.basename(path), image, None, reason

    return _batches_of(items(), shape, batch_size), len(files)


def example_files(pattern: str) -> list[str]:
    """The TFRecord files a glob (or a folder of them) names."""
    if tf.io.gfile.isdir(pattern):
        pattern = os.path.join(pattern, "*")
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise ConfigError(f"--examples {pattern!r}: no such files")
    return files


def example_batches(pattern: str, shape: Sequence[int], batch_size: int = 256) -> tuple[Iterator[Batch], int | None]:
    """Batches of gzipped TFRecords of tf.Examples (flat int64 `image`, optional `label`), as the
    pipeline's ExampleGen writes them; ids `file:record`."""
    from sparse_ae.data import IMAGE_KEY, LABEL_KEY

    files = example_files(pattern)
    size = int(np.prod(shape))
    no_label = -1  # labels are >= 0 (the data contract): -1 is the parser's stand-in for an absent one
    spec = {
        IMAGE_KEY: tf.io.VarLenFeature(tf.int64),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=no_label),
    }

    def items():
        for path in files:
            name = os.path.basename(path)
            records = tf.data.TFRecordDataset(path, compression_type="GZIP" if path.endswith(".gz") else "")
            index = 0
            try:
                for serialized in records.batch(batch_size).as_numpy_iterator():
                    parsed = tf.io.parse_example(serialized, spec)
                    pixels = tf.sparse.to_dense(parsed[IMAGE_KEY]).numpy()
                    counts = np.bincount(parsed[IMAGE_KEY].indices[:, 0].numpy(), minlength=len(serialized))
                    for row, parsed_label in zip(range(len(serialized)), parsed[LABEL_KEY].numpy(), strict=False):
                        label = None if parsed_label == no_label else int(parsed_label)
                        item_id = f"{name}:{index}"
                        index += 1
                        values = pixels[row, : counts[row]]
                        if counts[row] != size:
                            yield (
                                item_id,
                                None,
                                label,
                                (
                                    f"{IMAGE_KEY} has {counts[row]} values; the model "
                                    f"takes {size} ({'x'.join(map(str, shape))})"
                                ),
                            )
                        elif values.min() < 0 or values.max() > 255:
                            yield (
                                item_id,
                                None,
                                label,
                                (f"{IMAGE_KEY} pixels from {values.min()} to {values.max()}; allowed 0..255"),
                            )
                        else:
                            yield item_id, values.astype(np.uint8).reshape(shape), label, None
            except tf.errors.OpError as error:
                yield f"{name}:{index}", None, None, f"unreadable record ({plain(error.message)})"

    return _batches_of(items(), shape, batch_size), None


# ------------------------------------------------------------------------------------------------
# Where the rows go.
# ------------------------------------------------------------------------------------------------
class RowWriter:
    """One row per image, appended batch by batch to a CSV or Parquet file (by the suffix).

    The rows go to a hidden `.NAME.partial` beside the file, renamed to it by close(): a run that
    stops (abort(), e.g. --strict) leaves no partial file, and an earlier output stays as it was."""

    def __init__(self, path: str, latent_size: int = 0):
        self.path, self.latent_size = path, latent_size
        self.parquet = path.lower().endswith((".parquet", ".pq"))
        parent = os.path.dirname(path)
        if parent:
            tf.io.gfile.makedirs(parent)
        self._partial = os.path.join(parent, f".{os.path.basename(path)}.partial")
        self._local = None
        if self.parquet:  # pyarrow writes to a local file; a remote one is copied there when closed
            import tempfile

            self._local = self._partial if "://" not in path else tempfile.mkstemp(suffix=".parquet")[1]
        else:
            self._file = tf.io.gfile.GFile(self._partial, "w")
        self.columns = ["id", "label", "mse", "psnr", "anomalous"] + [f"latent_{i}" for i in range(latent_size)]
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            fields = [
                pa.field("id", pa.string()),
                pa.field("label", pa.int64()),
                pa.field("mse", pa.float32()),
                pa.field("psnr", pa.float32()),
                pa.field("anomalous", pa.bool_()),
            ]
            fields += [pa.field(f"latent_{i}", pa.float32()) for i in range(latent_size)]
            self._schema = pa.schema(fields)
            self._writer = pq.ParquetWriter(self._local, self._schema)
        else:
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.columns)

    def write(
        self,
        ids: list[str],
        labels: list[int | None],
        mse: np.ndarray,
        psnr: np.ndarray,
        flags: np.ndarray,
        latent: np.ndarray | None,
    ) -> None:
        columns = [ids, labels, mse, psnr, flags] + (
            [latent[:, i] for i in range(self.latent_size)] if self.latent_size and latent is not None else []
        )
        if self.parquet:
            import pyarrow as pa

            self._writer.write_table(pa.Table.from_arrays([pa.array(c) for c in columns], schema=self._schema))
        else:
            for row in zip(*columns, strict=False):
                self._writer.writerow(
                    [
                        f"{v:.6g}"
                        if isinstance(v, (float, np.floating))
                        else int(v)
                        if isinstance(v, (bool, np.bool_))
                        else v
                        for v in row
                    ]
                )

    def close(self) -> None:
        """Finish the file and put it in place."""
        self._close_file()
        if self._local is not None and self._local != self._partial:  # a remote Parquet file
            tf.io.gfile.copy(self._local, self.path, overwrite=True)
            os.remove(self._local)  # local by definition: tempfile's
        else:
            tf.io.gfile.rename(self._partial, self.path, overwrite=True)

    def abort(self) -> None:
        """Stop writing and delete what was written; the output file is left as it was."""
        self._close_file()
        for written in (self._partial, self._local):
            if written and tf.io.gfile.exists(written):
                tf.io.gfile.remove(written)

    def _close_file(self) -> None:
        if self.parquet:
            self._writer.close()
        else:
            self._file.close()


class Worst:
    """The `count` images with the largest MSE seen so far (a bounded heap: flat memory)."""

    def __init__(self, count: int = WORST_COUNT):
        self.count, self._seen = count, 0
        self._heap: list[tuple] = []

    def add(self, ids, images, reconstructions, mse) -> None:
        for item_id, image, reconstruction, value in zip(ids, images, reconstructions, mse, strict=False):
            self._seen += 1
            entry = (float(value), self._seen, item_id, image, reconstruction)
            if len(self._heap) < self.count:
                heapq.heappush(self._heap, entry)
            elif entry[0] > self._heap[0][0]:
                heapq.heapreplace(self._heap, entry)

    def save(self, path: str) -> str | None:
        """Originals over reconstructions, worst first, each titled with its id and MSE."""
        if not self._heap:
            return None
        from sparse_ae.plots import save_reconstruction_grid

        worst = sorted(self._heap, reverse=True)
        buffer = io.BytesIO()
        save_reconstruction_grid(
            np.stack([w[3] for w in worst]),
            np.stack([w[4] for w in worst]),
            buffer,
            titles=[f"{w[2]}\n{w[0]:.4f}" for w in worst],
        )
        with tf.io.gfile.GFile(path, "wb") as handle:
            handle.write(buffer.getvalue())
        return path


# ------------------------------------------------------------------------------------------------
# The loop.
# ------------------------------------------------------------------------------------------------
def score(
    scorer: Scorer,
    batches: Iterator[Batch],
    output: str,
    source: str,
    total: int | None = None,
    threshold: float | None = None,
    with_latent: bool = False,
    worst_png: str | None = None,
    strict: bool = False,
    progress: bool = True,
) -> ScoreSummary:
    """Score every batch, write the rows to output (and the worst reconstructions to worst_png);
    returns the summary. strict: the first image that cannot be scored raises DataValidationError."""
    from tqdm import tqdm

    if threshold is not None:
        source_of_threshold = f"MSE > {threshold:.6g} (given with --threshold)"
    elif scorer.calibration is not None:
        threshold, source_of_threshold = scorer.calibration.threshold, scorer.calibration.describe()
    else:
        raise ConfigError(
            f"{scorer.model_dir} carries no calibration (exported before calibrations were "
            f"stored): pass --threshold MSE"
        )
    summary = ScoreSummary(
        model_dir=scorer.model_dir,
        source=source,
        threshold=float(threshold),
        threshold_source=source_of_threshold,
        output=output,
    )
    writer: RowWriter | None = None
    worst = Worst()
    mse_sum = 0.0
    bar = tqdm(total=total, unit="img", desc="scoring", disable=not progress)
    try:
        for batch in batches:
            for item_id, reason in batch.skipped:
                if strict:
                    raise DataValidationError(
                        f"{item_id}: {reason} (--strict: stopped; without it the image is "
                        f"skipped and the others scored)"
                    )
                summary.skipped += 1
                if len(summary.skipped_examples) < 20:
                    summary.skipped_examples.append(f"{item_id}: {reason}")
            bar.update(len(batch.ids) + len(batch.skipped))
            if not batch.ids:
                continue
            result = scorer(batch.images)
            latent = result["latent"] if with_latent else None
            if writer is None:
                writer = RowWriter(output, latent.shape[1] if latent is not None else 0)
            flags = result["mse"] > threshold
            writer.write(batch.ids, batch.labels, result["mse"], result["psnr"], flags, latent)
            summary.count += len(batch.ids)
            summary.flagged += int(flags.sum())
            mse_sum += float(result["mse"].astype(np.float64).sum())
            worst.add(batch.ids, batch.images, result["reconstruction"], result["mse"])
    except BaseException:
        if writer is not None:  # --strict, an interrupt, a failure: no partial rows file
            writer.abort()
        raise
    finally:
        bar.close()
    if writer is None:  # nothing scorable: still an output with the header
        writer = RowWriter(output, 0)
    writer.close()
    summary.mean_mse = mse_sum / summary.count if summary.count else None
    if worst_png:
        summary.worst_png = worst.save(worst_png)
    return summary


def write_summary(summary: ScoreSummary, path: str) -> str:
    """The summary as JSON (with the flag rate)."""
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps({**dataclasses.asdict(summary), "rate": summary.rate}, indent=2))
    return path
