"""Why a component failed, on record in ML Metadata beside TFX's own FAILED state.

TFX marks a failed execution FAILED but keeps the reason only when the executor reports an
error code; an executor that raises (TFDSExampleGen on bad data, the Trainer on a diverged run)
leaves none. The local runner therefore records the exception's first line on the failed
execution, in the custom property where TFX keeps an execution's result
(`__execution_result__`, an ExecutionResult as JSON), so the run summary and any MLMD reader
find it in the same place either way.
"""

from __future__ import annotations

import re

from absl import logging
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2
from tfx.proto.orchestration import execution_result_pb2

from pipeline.mlmd_reader import latest_run_id, open_store, run_context

EXECUTION_RESULT = "__execution_result__"  # tfx.orchestration.portable.mlmd.execution_lib._EXECUTION_RESULT
_UNKNOWN = 2  # google.rpc.Code.UNKNOWN, what TFX records for executor exceptions
_BEAM_STEP = re.compile(r" \[while running '.*'\]$")


def failure_message(error: BaseException) -> str:
    """'ErrorType: first line of the message', without the Beam step that Beam appends."""
    text = str(error).strip()
    line = _BEAM_STEP.sub("", text.splitlines()[0]) if text else ""
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def recorded_failure(execution: metadata_store_pb2.Execution) -> str | None:
    """The recorded reason of a failed execution (its last non-empty line), or None."""
    if EXECUTION_RESULT not in execution.custom_properties:
        return None
    result = json_format.Parse(
        execution.custom_properties[EXECUTION_RESULT].string_value,
        execution_result_pb2.ExecutionResult(),
        ignore_unknown_fields=True,
    )
    lines = [line.strip() for line in result.result_message.splitlines() if line.strip()]
    return lines[-1] if lines else None


def record_failure(metadata_path: str, pipeline_name: str, error: BaseException) -> None:
    """Put error's message on the latest run's failed executions that carry no reason yet.

    Best effort: a store that cannot be opened or written leaves the original error to speak.
    """
    try:
        store = open_store(metadata_path, writable=True)
        run = run_context(store, latest_run_id(store, pipeline_name))
        failed = [
            execution
            for execution in store.get_executions_by_context(run.id)
            if execution.last_known_state == metadata_store_pb2.Execution.FAILED
            and EXECUTION_RESULT not in execution.custom_properties
        ]
        result = execution_result_pb2.ExecutionResult(code=_UNKNOWN, result_message=failure_message(error))
        for execution in failed:
            execution.custom_properties[EXECUTION_RESULT].string_value = json_format.MessageToJson(result)
        if failed:
            store.put_executions(failed)
    except Exception as failure:  # noqa: BLE001 - the component's failure matters more than its record
        logging.warning("Could not record the failure in ML Metadata (%s): %s", metadata_path, failure)
