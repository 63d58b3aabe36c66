"""Errors users can act on; the command line prints their message as one line (no TensorFlow import)."""


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key, the value and what is allowed."""


class DatasetUnavailableError(RuntimeError):
    """A TFDS dataset that is neither prepared in data_dir nor downloadable."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the run stopped and its weights must not be used."""
