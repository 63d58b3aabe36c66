"""The `sparse-ae` command: the model library's commands plus the pipeline's."""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

# Before TensorFlow is imported anywhere: Keras 2 for TFX/TFMA, and no C++ log lines (TF 2.16
# prints harmless cuFFT/cuDNN "already registered" errors at import; real failures still raise).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import warnings  # noqa: E402

# google-api-core warns on every start that Python 3.10 support ends; TFX 1.16 needs 3.10.
warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")

from sparse_ae import cli as library_cli  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    if "--debug" not in (sys.argv[1:] if argv is None else argv):
        import absl.logging
        absl.logging.set_verbosity(absl.logging.ERROR)  # TFDS/TFX info chatter; --debug shows it
    parser, subparsers = library_cli.make_parser()
    handlers = library_cli.add_library_commands(subparsers)
    return library_cli.run(parser, handlers, argv)


if __name__ == "__main__":
    sys.exit(main())
