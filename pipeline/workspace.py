"""The project folder's pipeline, for every command that acts on one: the flags they share, their
config (the settings file's defaults under the flags: sparse_ae/workspace.py), the record of it
that `pipeline run` leaves, and the refusal to act on a serving folder the pipeline never pushed to.
"""

from __future__ import annotations

import argparse
import os

from pipeline_config import PipelineConfig
from sparse_ae.config import add_set_argument, command_overrides, config_from_args
from sparse_ae.errors import ConfigError

ROOT_ALIASES = {"pipeline_root": "pipeline_root", "serving_dir": "serving_dir"}  # flag dest -> config key
OTHER_SERVING_DIR = "--other-serving-dir"
# What `pipeline run` writes into the settings file: where its pipeline is, and its data.
REMEMBERED_KEYS = ("pipeline_name", "pipeline_root", "metadata_path", "serving_dir", "dataset.name", "dataset.data_dir")


def pipeline_flags(set_example: str = "serving_dir=DIR, pipeline_name=NAME") -> argparse.ArgumentParser:
    """The parent parser of every command that acts on a pipeline: --pipeline-root, --serving-dir,
    --set and --other-serving-dir, the same words and meaning everywhere."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--pipeline-root",
        help="the pipeline's root, short for --set pipeline_root=DIR (the metadata store is in it; "
        "default: the project folder's sparse-ae.json, else pipeline_roots/sparse_ae)",
    )
    parent.add_argument(
        "--serving-dir",
        help="the serving folder, short for --set serving_dir=DIR (default: the project folder's "
        "sparse-ae.json, else serving/sparse_ae)",
    )
    parent.add_argument(
        OTHER_SERVING_DIR,
        action="store_true",
        help="act on serving_dir although ML Metadata records this pipeline's pushes in another folder",
    )
    add_set_argument(parent, set_example)
    return parent


def pipeline_config(
    args: argparse.Namespace,
    aliases: dict[str, str] | None = None,
    base: dict | None = None,
    workspace: bool = True,
) -> PipelineConfig:
    """Defaults, base (a preset), the settings file (unless workspace=False), then --pipeline-root/
    --serving-dir, the command's other alias flags and --set; validated (ConfigError)."""
    aliases = {**ROOT_ALIASES, **(aliases or {})}
    return config_from_args(PipelineConfig, args, aliases, base=base, workspace=workspace)


def remember(config: PipelineConfig) -> str | None:
    """Write the config's pipeline and data into the settings file; its path when that changed it."""
    from sparse_ae.workspace import settings_path, write_settings

    values = config.model_dump()
    flat = {key: values[key] for key in REMEMBERED_KEYS if "." not in key}
    flat |= {key: values["dataset"][key.split(".")[1]] for key in REMEMBERED_KEYS if key.startswith("dataset.")}
    return settings_path() if write_settings(flat) else None


def pushed_serving_dirs(config: PipelineConfig) -> list[str]:
    """The serving folders ML Metadata records this pipeline's pushes in, most recent push last;
    [] when nothing was pushed or there is no store."""
    config = config.absolute()
    if not os.path.isfile(config.resolved_metadata_path):  # local by definition: the sqlite store
        return []
    from components.serving_state import model_pushes
    from pipeline.mlmd_reader import open_store, pipeline_models
    from sparse_ae.serving_layout import normalize_path

    store = open_store(config.resolved_metadata_path)
    context = store.get_context_by_type_and_name("pipeline", config.pipeline_name)
    if context is None:
        return []
    pushes = sorted(
        (push for found in model_pushes(store, pipeline_models(store, context)).values() for push in found),
        key=lambda push: push.id,
    )
    folders: list[str] = []
    for push in pushes:
        folder = os.path.dirname(normalize_path(push.custom_properties["pushed_destination"].string_value))
        folders = [f for f in folders if f != folder] + [folder]
    return folders


def check_serving_dir(config: PipelineConfig, args: argparse.Namespace) -> None:
    """ConfigError naming both folders when the pipeline's pushes went elsewhere than serving_dir,
    unless --other-serving-dir says that is meant. The pipeline is the one the flags or the
    settings file name."""
    if getattr(args, "other_serving_dir", False):
        return
    from sparse_ae.workspace import read_settings

    named = {**read_settings(), **command_overrides(args, ROOT_ALIASES)}
    if "pipeline_root" not in named and "metadata_path" not in named:
        return  # no pipeline named (neither flags nor the settings file): the built-in default root is no record
    from sparse_ae.serving_layout import normalize_path

    config = config.absolute()
    pushed = pushed_serving_dirs(config)
    if not pushed or normalize_path(config.serving_dir) in pushed:
        return
    where = "--serving-dir" if "serving_dir" in command_overrides(args, ROOT_ALIASES) else "serving_dir"
    raise ConfigError(
        f"pipeline {config.pipeline_name!r} (root {config.pipeline_root}) pushes its models to {pushed[-1]}, "
        f"not to {where} {config.serving_dir}: pass --serving-dir {pushed[-1]}, or add {OTHER_SERVING_DIR} "
        f"to act on {config.serving_dir} anyway"
    )
