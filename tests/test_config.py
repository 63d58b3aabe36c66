"""Config validation: the defaults, one-line errors naming key, value and range."""

import pydantic
import pytest

from sparse_ae.config import ConfigError, SparseAEConfig, build_config, parse_overrides, with_overrides


def test_defaults_keep_the_seeds_sizes_and_sparsity_target():
    """Sizes and target are the seed's; the recipe is the sweep's choice (docs/model-defaults.md)."""
    config = SparseAEConfig()
    assert (config.latent_dim, config.hidden_dims) == (64, (256, 128))
    assert (config.sparsity_target, config.sparsity_weight) == (0.05, 0.01)
    assert (config.latent_activation, config.encoder_activation, config.decoder_activation) == ("relu", "elu", "elu")
    assert (config.latent_top_k, config.latent_batch_norm) == (6, True)
    assert (config.batch_norm, config.kernel_initializer) == (True, "he_normal")
    assert (config.learning_rate, config.learning_rate_schedule, config.epochs) == (5e-3, "cosine", 15)
    assert not config.denoising


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("sparsity_target", 1.5, ["sparsity_target=1.5", "< 1.0"]),
        ("sparsity_target", 0.0, ["sparsity_target=0.0", "> 0.0"]),
        ("sparsity_weight", -0.1, ["sparsity_weight=-0.1", ">= 0.0"]),
        ("latent_dim", 0, ["latent_dim=0", "> 0"]),
        ("hidden_dims", [128, 0], ["hidden_dims=", "every size must be > 0"]),
        ("latent_activation", "softmax", ["latent_activation='softmax'", "sigmoid", "relu"]),
        ("learning_rate", "fast", ["learning_rate='fast'", "float"]),
    ],
)
def test_invalid_value_names_key_value_and_allowed_range(key, value, expected):
    with pytest.raises(ConfigError) as caught:
        build_config(SparseAEConfig, {key: value})
    message = str(caught.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


def test_unknown_key_is_an_error_listing_known_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'sparsity'.*sparsity_target"):
        build_config(SparseAEConfig, {"sparsity": 0.1})


def test_overrides_parse_types_and_lists():
    config = with_overrides(
        SparseAEConfig(), ["sparsity_target=0.02", "hidden_dims=128,64", "latent_activation=relu", "visible_gpus=[]"]
    )
    assert config.sparsity_target == 0.02
    assert config.hidden_dims == (128, 64)
    assert config.latent_activation == "relu"
    assert config.visible_gpus == ()


def test_nested_overrides_and_bad_syntax():
    assert parse_overrides(["model.latent_dim=8", "model.seed=1"]) == {"model": {"latent_dim": 8, "seed": 1}}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["latent_dim"])


def test_configs_are_immutable():
    with pytest.raises(pydantic.ValidationError):
        SparseAEConfig().latent_dim = 3
