"""The ServingPusher's executor: TFX's Pusher with the publishing of components/serving_dir.py
(staged, never half-written, never duplicating the live model, versions strictly increasing)."""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.serving_dir import archive, publish, same_saved_model
from sparse_ae.serving_layout import live_path


class Executor(tfx_pusher.Executor):
    """Filesystem pushes only; see components/serving_dir.py."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("ServingPusher pushes to a filesystem destination only")
        base = destination.filesystem.base_directory

        # Archive (as TFX's Pusher does) before publishing: when that fails (disk full) nothing
        # has gone live without a PushedModel to record it.
        archive(model_path, model_push.uri)
        live = live_path(base)
        if live and same_saved_model(model_path, live):
            logging.info("Model is already live as %s; nothing new published.", live)
            model_push.set_int_custom_property("already_live", 1)
            serving_path = live
        else:
            serving_path = publish(model_path, base)
            logging.info("Model published to %s.", serving_path)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=os.path.basename(serving_path))
        record_calibration(model_push, serving_path)


def record_calibration(artifact: types.Artifact, model_dir: str) -> None:
    """Copy the calibration stored in the SavedModel folder onto the PushedModel artifact (ML Metadata):
    `anomaly_threshold`, `anomaly_quantile` and the whole record as JSON in `calibration`."""
    from sparse_ae.calibration import CALIBRATION_FILE

    path = os.path.join(model_dir, CALIBRATION_FILE)
    if not fileio.exists(path):  # a model exported before calibrations existed
        return
    content = io_utils.read_string_file(path)
    calibration = json.loads(content)
    artifact.set_float_custom_property("anomaly_threshold", float(calibration["threshold"]))
    artifact.set_float_custom_property("anomaly_quantile", float(calibration["quantile"]))
    artifact.set_string_custom_property("calibration", content)
