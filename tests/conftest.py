"""Shared test setup: Keras 2 for TFX/TFMA, quiet TensorFlow, small shared fixtures."""
import hashlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from sparse_ae.config import SparseAEConfig  # noqa: E402  (its package sets TF_USE_LEGACY_KERAS)


@pytest.fixture
def small_config() -> SparseAEConfig:
    """A small, fast model for unit tests."""
    return SparseAEConfig(hidden_dims=(64,), latent_dim=16, batch_size=64, epochs=2, shuffle_buffer=256)


@pytest.fixture(scope="session")
def garment_data_dir(tmp_path_factory) -> str:
    """A TFDS data_dir with garment_shapes/small prepared once per test session."""
    from sparse_ae.data import tfds_builder

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    tfds_builder("garment_shapes/small", data_dir=data_dir, download=True)
    return data_dir


def small_pipeline_overrides(root, data_dir: str, epochs: int = 1) -> list:
    """--set overrides for a fast pipeline on garment_shapes/small under root, fully offline.

    Beam's mode is left to the pipeline's choice: in-memory for 2,500 examples on any machine
    (pipeline/beam_args.py), so the choice is exercised and the runs stay fast. No sparsity or
    linear-baseline check: a model of one or three epochs on 2,000 images has neither settled on
    its sparsity target nor caught up with PCA (the tests of those checks set them).
    """
    return [f"pipeline_root={root}/root", f"serving_dir={root}/serving", "dataset.name=garment_shapes/small",
            f"dataset.data_dir={data_dir}", "dataset.download=false", f"model.epochs={epochs}",
            "gate.sparsity_tolerance=none", "gate.min_gain_over_linear=none"]


# A gate every trained model passes: for tests about faults, not about quality.
LENIENT_GATE = ["gate.psnr_threshold=5", "gate.change_tolerance=100"]


def file_digests(path: str) -> dict:
    """Every file under path (hidden ones included) -> sha256 of its bytes: a tree to compare
    before and after a fault."""
    found = {}
    for folder, _, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            found[os.path.relpath(full, path)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
    return found


def served_pipeline_root(root: str, data_dir: str):
    """(overrides, absolute config) of a small pipeline root under root whose first run, in this
    process, has already pushed a model: the state a fault must leave alone."""
    from pipeline.local_runner import run_local
    from pipeline_config import load_config

    overrides = small_pipeline_overrides(root, data_dir, epochs=1) + LENIENT_GATE
    config = load_config(overrides).absolute()
    run_local(config)
    return overrides, config


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
