"""Process-wide settings for a program that trains or serves with the library, made explicitly.

Importing `sparse_ae` changes nothing outside it; an entry point (a command, a notebook, a
Trainer's `run_fn`) calls `setup()` once, early. Programs that also run TFX call
`pipeline.process.setup()`, which calls this one.
"""

from __future__ import annotations

from sparse_ae.autograph_rules import leave_keras_unconverted


def setup() -> None:
    """Apply the library's process settings (idempotent): AutoGraph leaves tf_keras's own code
    unconverted (sparse_ae/autograph_rules.py; imports TensorFlow)."""
    leave_keras_unconverted()
