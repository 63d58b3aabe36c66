"""Files in run directories that may live in an object store (gs://, s3://, hdfs://).

TensorFlow's file layer (`tf.io.gfile`) reads and writes every scheme TensorFlow knows; h5py
(Keras's `.weights.h5`) reads and writes local files only, so weights go through a local
temporary copy when their folder is remote.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import tensorflow as tf


def is_remote(path: str) -> bool:
    """True for a URI with a scheme (gs://, s3://, hdfs://, ram://); False for a local path."""
    return "://" in str(path)


def write_text(path: str, text: str) -> None:
    """Write a text file, creating its folder, on any filesystem TensorFlow knows."""
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(text)


def read_text(path: str) -> str:
    """Read a text file from any filesystem TensorFlow knows."""
    with tf.io.gfile.GFile(path, "r") as handle:
        return handle.read()


@contextlib.contextmanager
def local_dir(target_dir: str) -> Iterator[str]:
    """target_dir itself when local; else a local temporary folder whose files are copied into
    target_dir (through tf.io.gfile) when the block ends, whether or not it raised."""
    if not is_remote(target_dir):
        yield target_dir
        return
    # Local by definition: a scratch folder for what h5py can only write locally.
    scratch = tempfile.mkdtemp(prefix="sparse_ae_local_")
    try:
        yield scratch
    finally:
        try:
            upload_tree(scratch, target_dir)
        finally:
            tf.io.gfile.rmtree(scratch)


def upload_tree(source: str, target: str) -> None:
    """Copy every file under source into target (any filesystem), replacing files of the same name."""
    for folder, _, files in tf.io.gfile.walk(source):
        out = os.path.join(target, os.path.relpath(folder, source)) if folder != source else target
        tf.io.gfile.makedirs(out)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), os.path.join(out, name), overwrite=True)


def load_weights(model, path: str) -> None:
    """model.load_weights(path) for a local or remote `.weights.h5` (a remote one is read from a local copy)."""
    if not is_remote(path):
        model.load_weights(path)
        return
    # Local by definition: h5py reads only local files.
    scratch = tempfile.mkdtemp(prefix="sparse_ae_weights_")
    try:
        local = os.path.join(scratch, os.path.basename(path))
        tf.io.gfile.copy(path, local, overwrite=True)
        model.load_weights(local)
    finally:
        tf.io.gfile.rmtree(scratch)
