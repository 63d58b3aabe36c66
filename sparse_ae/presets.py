"""Named model settings, one switch away from the defaults (`--preset NAME`).

`seed` is the seed project's configuration exactly (sigmoid encoder, a dense sigmoid code, relu
decoder, glorot initialisation, beta 1e-3, Adam at a constant 1e-3, 10 epochs), so its tutorial figures stay
reproducible; `default` is the current defaults of SparseAEConfig (chosen by the sweep in
docs/model-defaults.md).
"""

from __future__ import annotations

from typing import Any

from sparse_ae.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "seed": {
        "hidden_dims": [256, 128],
        "latent_dim": 64,
        "latent_activation": "sigmoid",
        "latent_top_k": None,
        "latent_batch_norm": False,
        "encoder_activation": "sigmoid",
        "decoder_activation": "relu",
        "kernel_initializer": "glorot_uniform",
        "batch_norm": False,
        "sparsity_target": 0.05,
        "sparsity_weight": 1e-3,
        "learning_rate": 1e-3,
        "learning_rate_schedule": "constant",
        "early_stopping_patience": None,
        "batch_size": 256,
        "epochs": 10,
    },
}


def preset(name: str) -> dict[str, Any]:
    """The model settings of a named preset (a copy), or ConfigError naming the known ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return dict(PRESETS[name])
