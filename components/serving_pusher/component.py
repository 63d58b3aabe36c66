"""ServingPusher: TFX's Pusher spec and outputs, with an executor that pushes atomically."""

from tfx.components.pusher import component as pusher_component
from tfx.dsl.components.base import executor_spec

from components.serving_pusher import executor


class ServingPusher(pusher_component.Pusher):
    """Same inputs, parameters and `pushed_model` output as tfx Pusher (filesystem destinations)."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
