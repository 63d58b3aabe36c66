"""The sweep behind the model's defaults (docs/model-defaults.md): train each setting standalone,
then tabulate eval PSNR, mean latent activation and training time against PCA of the same code size.

Usage: python scripts/sweep.py --data-dir tfds_data --output artifacts/sweep [--only a,b] [--table-only]
Each setting's run lands in <output>/<name>/ (metrics.json with the training seconds); the table
(results.md) and the plot (frontier.png) are rebuilt from every run found there, so a sweep can
be run in pieces. Times are ratios to the `seed` setting measured on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sparse_ae.presets import PRESETS

DATASET = "garment_shapes/full"
ELU = {"encoder_activation": "elu", "decoder_activation": "elu", "kernel_initializer": "he_normal"}
COSINE = {"learning_rate_schedule": "cosine"}

# name -> overrides of the seed's settings (the `seed` preset); epochs are the most each may run.
SETTINGS: dict[str, dict] = {
    "seed": {},
    "elu_b0.01_lr3e-3_cos": {**ELU, **COSINE, "sparsity_weight": 0.01, "learning_rate": 3e-3},
    "elu_b0.01_lr3e-3_cos_20ep": {
        **ELU,
        **COSINE,
        "sparsity_weight": 0.01,
        "learning_rate": 3e-3,
        "epochs": 20,
    },
    "elu_bn_b0.01_lr3e-3_cos_20ep": {
        **ELU,
        **COSINE,
        "batch_norm": True,
        "sparsity_weight": 0.01,
        "learning_rate": 3e-3,
        "epochs": 20,
    },
    "elu_b0.01_bs128_lr2e-3_cos_12ep": {
        **ELU,
        **COSINE,
        "sparsity_weight": 0.01,
        "learning_rate": 2e-3,
        "batch_size": 128,
        "epochs": 12,
    },
    "elu_b0.003_lr3e-3_cos_20ep": {
        **ELU,
        **COSINE,
        "sparsity_weight": 0.003,
        "learning_rate": 3e-3,
        "epochs": 20,
    },
    "elu_b0.01_lr6e-3_cos_20ep": {
        **ELU,
        **COSINE,
        "sparsity_weight": 0.01,
        "learning_rate": 6e-3,
        "epochs": 20,
    },
    "elu_bn_b0.01_lr3e-3_cos_15ep": {
        **ELU,
        **COSINE,
        "batch_norm": True,
        "sparsity_weight": 0.01,
        "learning_rate": 3e-3,
        "epochs": 15,
    },
    "elu_bn_b0.01_lr5e-3_cos_15ep": {
        **ELU,
        **COSINE,
        "batch_norm": True,
        "sparsity_weight": 0.01,
        "learning_rate": 5e-3,
        "epochs": 15,
    },
}
# The setting that became SparseAEConfig's defaults (tests/test_linear_baseline.py checks they agree).
DEFAULT_SETTING = "elu_bn_b0.01_lr5e-3_cos_15ep"


def run_setting(name: str, overrides: dict, data_dir: str, output: str) -> dict:
    """Train one setting standalone; returns its metrics.json with the training seconds added."""
    from sparse_ae.config import SparseAEConfig
    from sparse_ae.train import METRICS_FILE, train

    config = SparseAEConfig.model_validate({**PRESETS["seed"], **overrides})
    folder = os.path.join(output, name)
    start = time.perf_counter()
    summary = train(config, DATASET, folder, data_dir=data_dir, download=False, verbose=2, linear_baseline=False)
    summary["train_seconds"] = time.perf_counter() - start
    with open(os.path.join(folder, METRICS_FILE), "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary


def collect(output: str) -> list[dict]:
    rows = []
    for name in SETTINGS:
        path = os.path.join(output, name, "metrics.json")
        if os.path.exists(path):
            rows.append({"name": name, **json.load(open(path))})
    return rows


def write_table(rows: list[dict], baseline: dict, output: str) -> str:
    """results.md: one row per setting, the PCA figure and the seed's time as references."""
    seed_seconds = next((r["train_seconds"] for r in rows if r["name"] == "seed"), None)
    lines = [
        f"Data: {DATASET}, eval split ({baseline['eval_images']} images); PCA-{baseline['code_size']} "
        f"(fitted on the train split) {baseline['eval_psnr']:.2f} dB.",
        "",
        "| setting | epochs run (best) | eval PSNR (dB) | vs PCA (dB) | mean activation | training (s) | x seed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        ratio = f"{row['train_seconds'] / seed_seconds:.2f}" if seed_seconds else "-"
        lines.append(
            f"| {row['name']} | {row['epochs_run']} ({row['best_epoch']}) | {row['best_val_psnr']:.2f} | "
            f"{row['best_val_psnr'] - baseline['eval_psnr']:+.2f} | {row['best_val_mean_activation']:.4f} | "
            f"{row['train_seconds']:.0f} | {ratio} |"
        )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(output, "results.md"), "w") as handle:
        handle.write(text)
    return text


def write_plot(rows: list[dict], baseline: dict, target: float, output: str) -> str:
    """frontier.png: eval PSNR against mean activation, PCA as a line, the target's ±10 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.axvspan(target * 0.9, target * 1.1, color="tab:green", alpha=0.15, label="sparsity_target ±10 %")
    axes.axhline(baseline["eval_psnr"], color="tab:red", linestyle="--", label=f"PCA-{baseline['code_size']}")
    for row in rows:
        axes.scatter(row["best_val_mean_activation"], row["best_val_psnr"], color="tab:blue")
        axes.annotate(
            row["name"],
            (row["best_val_mean_activation"], row["best_val_psnr"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    axes.set_xlabel("mean latent activation (eval split)")
    axes.set_ylabel("eval PSNR (dB)")
    axes.set_title(f"{DATASET}: settings tried")
    axes.legend(loc="center right", fontsize=8)
    path = os.path.join(output, "frontier.png")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="tfds_data")
    parser.add_argument("--output", default="artifacts/sweep")
    parser.add_argument("--only", default="", help="comma-separated setting names (default: all)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table and plot from earlier runs")
    args = parser.parse_args()

    from sparse_ae import linear_baseline, process

    process.setup()  # trains in this process: the library's AutoGraph rule (sparse_ae/process.py)
    from sparse_ae.config import SparseAEConfig

    os.makedirs(args.output, exist_ok=True)
    config = SparseAEConfig.model_validate(PRESETS["seed"])
    baseline_path = os.path.join(args.output, "linear_baseline.json")
    if os.path.exists(baseline_path):
        baseline = json.load(open(baseline_path))
    else:
        baseline = linear_baseline.compute(
            DATASET, "train", "test", config.latent_dim, data_dir=args.data_dir, download=False
        )
        json.dump(baseline, open(baseline_path, "w"), indent=2)
    names = [n for n in args.only.split(",") if n] or list(SETTINGS)
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")
    if not args.table_only:
        for name in names:
            summary = run_setting(name, SETTINGS[name], args.data_dir, args.output)
            print(
                f"{name}: eval PSNR {summary['best_val_psnr']:.2f} dB, mean activation "
                f"{summary['best_val_mean_activation']:.4f}, {summary['train_seconds']:.0f} s",
                flush=True,
            )
    rows = collect(args.output)
    print(write_table(rows, baseline, args.output))
    print(f"wrote {write_plot(rows, baseline, config.sparsity_target, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
