"""Shared test setup: Keras 2 for TFX/TFMA, quiet TensorFlow, small shared fixtures."""

import os

import pytest

from pipeline import process
from sparse_ae.config import SparseAEConfig

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
process.setup()  # the tests' process is an entry point: Keras 2 for TFX, before TensorFlow is imported


@pytest.fixture
def small_config() -> SparseAEConfig:
    """A small, fast model for unit tests."""
    return SparseAEConfig(hidden_dims=(64,), latent_dim=16, batch_size=64, epochs=2, shuffle_buffer=256)


@pytest.fixture(scope="session", autouse=True)
def session_settings_file(tmp_path_factory):
    """Commands run by session- and module-scoped fixtures keep their project settings file
    (sparse_ae/workspace.py) out of the checkout, which would otherwise become every later
    command's defaults."""
    from sparse_ae.workspace import SETTINGS_ENV, SETTINGS_FILE

    os.environ[SETTINGS_ENV] = str(tmp_path_factory.mktemp("session-settings") / SETTINGS_FILE)


@pytest.fixture(autouse=True)
def settings_file(tmp_path_factory, monkeypatch) -> str:
    """Each test's own project settings file, empty at its start."""
    from sparse_ae.workspace import SETTINGS_ENV, SETTINGS_FILE

    path = str(tmp_path_factory.mktemp("settings") / SETTINGS_FILE)
    monkeypatch.setenv(SETTINGS_ENV, path)
    return path


@pytest.fixture(scope="session")
def garment_data_dir(tmp_path_factory) -> str:
    """A TFDS data_dir with garment_shapes/small prepared once per test session."""
    from sparse_ae.data import tfds_builder

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    tfds_builder("garment_shapes/small", data_dir=data_dir, download=True)
    return data_dir


@pytest.fixture
def ram_root(tmp_path, monkeypatch):
    """A fresh folder on TensorFlow's in-process ram:// filesystem, served to TFX's file layer
    (fileio) by TFX's own TensorFlow plugin registered for that scheme: a non-local store like
    gs://, without a cloud. The working directory is an empty local folder, so a test can check
    that nothing was written to a local path named after the URI (such as ./ram:/...)."""
    import uuid

    import tensorflow as tf
    from remote_fs import register_ram_filesystem

    register_ram_filesystem()
    monkeypatch.chdir(tmp_path)
    root = f"ram://test-{uuid.uuid4().hex[:12]}"
    tf.io.gfile.makedirs(root)
    yield root
    try:
        tf.io.gfile.rmtree(root)  # frees the memory
    except tf.errors.NotFoundError:  # ram:// cannot delete some trees whose files were deleted one by one
        pass
