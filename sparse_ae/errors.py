"""Errors users can act on; the command line prints their message as one line (no TensorFlow import)."""


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key, the value and what is allowed."""


class DatasetUnavailableError(RuntimeError):
    """A TFDS dataset that is neither prepared in data_dir nor downloadable."""


class DataValidationError(ValueError):
    """Data that breaks the pipeline's contract (unreadable shard, wrong shape, pixel or label out of
    range, empty split); the message names the split, the shard or record, what was found and what is allowed."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the run stopped and its weights must not be used."""
