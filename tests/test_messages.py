"""Every `sparse-ae ...` command an error message quotes is one the command line takes: parsed by the real
parser and its config validated, as scripts/check_docs.py does for the documented commands."""

import os
import shutil
import socket

import pytest
from helpers import check_docs_module

from components.tfds_example_gen.checks import check_declared
from sparse_ae import data
from sparse_ae.errors import DatasetUnavailableError, DataValidationError

PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy")


@pytest.fixture(scope="module")
def check_docs():
    return check_docs_module()


def quoted_commands_are_valid(check_docs, message: str) -> None:
    """message quotes at least one `sparse-ae ...` command, and each one parses and validates."""
    assert check_docs.QUOTED_COMMAND.search(message), f"no `sparse-ae ...` command in: {message}"
    findings = check_docs.check_message(message)
    assert not findings, f"{message}\n" + "\n".join(findings)


def test_every_command_quoted_in_the_codes_messages_is_valid(check_docs):
    """The literal commands of the messages in sparse_ae/, components/, pipeline/, benchmarks/ and
    pipeline_config.py, each f-string placeholder standing for a number or a word."""
    quoted = [rendering[0] for path in check_docs.source_files() for _, rendering in check_docs.message_commands(path)]
    assert "sparse-ae pipeline run" in quoted and "sparse-ae models" in quoted, quoted  # the sweep sees them
    findings = check_docs.check_messages()
    assert not findings, "commands quoted in messages that the CLI refuses:\n" + "\n".join(findings)


def test_prepare_remedy_offline(check_docs, tmp_path):
    """A dataset not prepared while download is off; a pinned version is part of the remedy."""
    with pytest.raises(DatasetUnavailableError) as caught:
        data.tfds_builder("fashion_mnist:3.0.1", data_dir=str(tmp_path), download=False)
    assert "`sparse-ae prepare --dataset fashion_mnist --set dataset.data_dir=DIR --set dataset.version=3.0.1`" in str(
        caught.value
    )
    quoted_commands_are_valid(check_docs, str(caught.value))


def test_prepare_remedy_of_an_unreachable_download_host(check_docs, tmp_path, monkeypatch):
    """The download host probed through a proxy on a closed local port: refused at once, no network needed."""
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # closed once the socket is, never listened on
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(DatasetUnavailableError, match="cannot be reached") as caught:
        data.tfds_builder("fashion_mnist", data_dir=str(tmp_path / "tfds"), download=True)
    quoted_commands_are_valid(check_docs, str(caught.value))


def test_prepare_remedy_of_a_missing_shard(check_docs, garment_data_dir, tmp_path):
    """A prepared dataset with a shard gone: the remedy prepares it again into the same data_dir."""
    data_dir = str(tmp_path / "tfds with a space")  # the command quotes it for the shell
    shutil.copytree(garment_data_dir, data_dir)
    builder = data.tfds_builder("garment_shapes/small", data_dir=data_dir, download=False)
    os.remove(builder.info.splits["train"].file_instructions[0].filename)
    with pytest.raises(DataValidationError, match="is missing") as caught:
        check_declared(builder, {"train": "train", "test": "eval"}, "image", "label")
    assert f"`sparse-ae prepare --dataset garment_shapes/small --set 'dataset.data_dir={data_dir}'`" in str(
        caught.value
    )
    quoted_commands_are_valid(check_docs, str(caught.value))
