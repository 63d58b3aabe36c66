"""`sparse-ae models`, `sparse-ae promote MODEL --reason TEXT`, `sparse-ae rollback [--to V] --reason TEXT`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pipeline.workspace import check_serving_dir, pipeline_config, pipeline_flags


def _config(args: argparse.Namespace):
    """The project folder's pipeline under the flags; refused when it pushes to another serving folder."""
    config = pipeline_config(args).absolute()
    check_serving_dir(config, args)
    return config


def cmd_models(args: argparse.Namespace) -> int:
    config = _config(args)  # validated before the slow TFX/TFMA import
    import logging

    from pipeline.promotion import format_inventory, inventory

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # TFMA's deprecation warnings on loading metrics
    found = inventory(config)
    print(found.to_json() if args.json else format_inventory(found, config))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    config = _config(args)
    _require_reason(args, "promote")  # refuse before the slow imports and any lookup
    from pipeline.promotion import promote

    _check_promotion(config, args)
    version = _published("promote", lambda: promote(config, args.model, args.reason))
    if version is None:
        return 1
    print(
        f"model {version.model_id} published as version {version.version} ({version.path}), now live; "
        f"recorded in ML Metadata as a manual promotion by {version.user}"
    )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    config = _config(args)
    _require_reason(args, "rollback")
    from pipeline.promotion import rollback

    result = _published("rollback", lambda: rollback(config, args.to, args.reason))
    if result is None:
        return 1
    target, version = result
    print(
        f"version {target.version} (model {target.model_id}) re-published as version {version.version} "
        f"({version.path}), now live; recorded in ML Metadata as a rollback by {version.user}"
    )
    return 0


def _check_promotion(config, args: argparse.Namespace) -> None:
    """Print the candidate's and the live model's eval PSNR; refuse (exit 2) a candidate the gate
    refused or one worse than the live model unless --force."""
    from pipeline.evaluation_record import Evaluation
    from pipeline.evaluation_text import refused_line, sparsity_line
    from pipeline.promotion import promotion_preview

    candidate, live = promotion_preview(config, args.model)

    def psnr(model) -> str:
        return f"eval PSNR {model.psnr:.2f} dB" if model.psnr is not None else "eval PSNR unknown"

    def sparsity(model) -> list[str]:
        line = sparsity_line(Evaluation(active_units=model.active_units, hoyer=model.hoyer))
        return [f"  {line}"] if line else []

    verdict = "refused by the gate" if candidate.blessed is False else "passed the gate"
    print(f"Candidate: model {candidate.model_id}, {psnr(candidate)}, {verdict}")
    for line in sparsity(candidate) + [f"  {refused_line(failure)}" for failure in candidate.refused_by]:
        print(line)
    print(f"Live: model {live.model_id}, {psnr(live)}" if live else "Live: none")
    for line in sparsity(live) if live else []:
        print(line)
    concerns = []
    if candidate.blessed is False:
        concerns.append("the gate refused it")
    if live and live.psnr is not None and candidate.psnr is not None and candidate.psnr < live.psnr:
        concerns.append(f"its eval PSNR is {live.psnr - candidate.psnr:.2f} dB below the live model's")
    if concerns and not args.force:
        from sparse_ae.errors import ConfigError

        raise ConfigError(
            f"model {candidate.model_id} not promoted: {' and '.join(concerns)}; add --force to publish it anyway"
        )


def _published(name: str, action: Callable[[], Any]) -> Any:
    """The action's result, or None after one line on stderr when the copy into serving failed
    (disk full, unwritable folder): nothing was published, the failure is recorded. ConfigError
    (one line, exit 2) while a pipeline run or another promotion holds the pipeline root."""
    from components.serving_dir import PublishError
    from pipeline.run_lock import PipelineRootBusy
    from sparse_ae.errors import ConfigError

    try:
        return action()
    except PublishError as error:
        print(f"sparse-ae: error: {error}", file=sys.stderr)
        return None
    except PipelineRootBusy as error:
        raise ConfigError(
            f"{name} refused: pipeline root {error.root} is in use ({error.holder}); "
            f"nothing was published: run it again once that has finished"
        ) from None


def _require_reason(args: argparse.Namespace, action: str) -> None:
    from sparse_ae.errors import ConfigError

    if not (args.reason or "").strip():  # pipeline.promotion checks again for Python callers
        raise ConfigError(f"{action} needs --reason TEXT: it is recorded in ML Metadata with who ran it")


def add_promotion_commands(subparsers) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Register models/promote/rollback; return the handler of each command name."""
    models = subparsers.add_parser(
        "models", help="serving versions and evaluated candidates, from ML Metadata", parents=[pipeline_flags()]
    )
    models.add_argument("--json", action="store_true", help="machine-readable output")

    promote = subparsers.add_parser(
        "promote", help="push a candidate the gate rejected (recorded, with a reason)", parents=[pipeline_flags()]
    )
    promote.add_argument("model", metavar="MODEL", help="Model artifact id (see `models`) or its URI")
    promote.add_argument("--reason", help="why the gate is overridden (required; recorded)")
    promote.add_argument(
        "--force",
        action="store_true",
        help="publish a candidate the gate refused, or one with a lower eval PSNR than the live model",
    )

    rollback = subparsers.add_parser(
        "rollback", help="make an earlier serving version live again (recorded)", parents=[pipeline_flags()]
    )
    rollback.add_argument(
        "--to",
        type=int,
        metavar="VERSION",
        help="the version to restore (default: the newest earlier one that differs from live)",
    )
    rollback.add_argument("--reason", help="why (required; recorded)")
    return {"models": cmd_models, "promote": cmd_promote, "rollback": cmd_rollback}
