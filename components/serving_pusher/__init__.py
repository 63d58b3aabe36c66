"""Pusher to a TF Serving model directory: atomic, never duplicating the live model."""

from components.serving_pusher.component import ServingPusher

__all__ = ["ServingPusher"]
