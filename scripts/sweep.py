"""The sweeps behind the model's defaults (docs/model-defaults.md): train each setting standalone,
then tabulate eval PSNR, the code's sparsity per image (active units, Hoyer, dead units, PSNR with
the inactive units zeroed) and training time against PCA and dense autoencoders of the code's size.

Usage: python scripts/sweep.py --data-dir tfds_data --output artifacts/sweep [--only a,b] [--table-only]
Each setting's run lands in <output>/<name>/ (metrics.json with the training seconds); the table
(results.md) and the plots (frontier.png, sparse-frontier.png) are rebuilt from every run found
there, so a sweep can be run in pieces. Times are ratios to the `dense_default` setting (the
recipe's dense code) measured in the same batch on the same machine.
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
# The second sweep: the first sweep's chosen recipe (elu + batch norm hidden layers, beta 0.01, Adam
# 5e-3 with cosine decay, 15 epochs) with a dense code, as it was the default until 2026-12-06...
RECIPE = SETTINGS["elu_bn_b0.01_lr5e-3_cos_15ep"]
SETTINGS["dense_default"] = {**RECIPE}
# ... then latent rules that make the code sparse per image (TopK, batch norm on the latent
# pre-activations, the activation, beta), and dense autoencoders whose whole code is k units: the
# control a k-sparse code must beat (same recipe, latent_dim = k).
TOPK_BN = {**RECIPE, "latent_batch_norm": True}
for _k in (4, 6, 7, 8, 12, 16):
    SETTINGS[f"topk{_k}_bn_relu"] = {**TOPK_BN, "latent_top_k": _k, "latent_activation": "relu"}
    SETTINGS[f"dense_code{_k}"] = {**RECIPE, "latent_dim": _k}
SETTINGS["topk8_bn_sigmoid"] = {**TOPK_BN, "latent_top_k": 8}
SETTINGS["topk8_bn_relu_b0"] = {**TOPK_BN, "latent_top_k": 8, "latent_activation": "relu", "sparsity_weight": 0.0}
SETTINGS["topk8_relu_no_latent_bn"] = {**RECIPE, "latent_top_k": 8, "latent_activation": "relu"}
# A second seed of the two candidates for the default: how much the figures move from run to run.
SETTINGS["topk6_bn_relu_seed7"] = {**TOPK_BN, "latent_top_k": 6, "latent_activation": "relu", "seed": 7}
SETTINGS["topk8_relu_no_latent_bn_seed7"] = {**RECIPE, "latent_top_k": 8, "latent_activation": "relu", "seed": 7}
SETTINGS["topk8_bn_relu_20ep"] = {**TOPK_BN, "latent_top_k": 8, "latent_activation": "relu", "epochs": 20}
# The setting that became SparseAEConfig's defaults (tests/test_linear_baseline.py checks they agree).
DEFAULT_SETTING = "topk6_bn_relu"
# PCA sizes for the frontier's linear curve (PCA is nested: one fit of the largest, truncated).
PCA_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 48, 64)


def run_setting(name: str, overrides: dict, data_dir: str, output: str) -> dict:
    """Train one setting standalone; returns its metrics.json with the training seconds added."""
    from sparse_ae.config import SparseAEConfig
    from sparse_ae.train import METRICS_FILE, train

    config = SparseAEConfig.model_validate({**PRESETS["seed"], **overrides})
    folder = os.path.join(output, name)
    start = time.perf_counter()
    summary = train(config, DATASET, folder, data_dir=data_dir, download=False, verbose=2)
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
    """results.md: one row per setting; the code's sparsity where the run measured it (the second sweep)."""
    reference = next((r["train_seconds"] for r in rows if r["name"] == "dense_default"), None)
    pca = {int(k): v for k, v in baseline["pca_psnr"].items()}
    lines = [
        f"Data: {DATASET}, eval split ({baseline['eval_images']} images); PCA fitted on the train split: "
        + ", ".join(f"PCA-{k} {pca[k]:.2f}" for k in (4, 6, 8, 12, 16, 64))
        + " dB.",
        "",
        "| setting | eval PSNR (dB) | active units (non-zero) | Hoyer | dead | zeroed PSNR (cost) | PCA-k (dB) "
        "| gain over PCA-k | mean activation | training (s) | x dense_default |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        code = row.get("code_sparsity")
        ratio = f"{row['train_seconds'] / reference:.2f}" if reference else "-"
        if code:
            nonzero = sum(code["unit_scale"][i] > 0 for i in range(code["units"]))  # units ever non-zero
            at_active = row["linear_baseline_at_active"]
            figures = (
                f"{code['active_units']:.1f} ({code['nonzero_units']:.1f}) | {code['hoyer']:.2f} | "
                f"{code['dead_fraction']:.0%} ({code['units'] - nonzero} never on) | "
                f"{code['psnr_active_only']:.2f} ({code['zeroing_cost']:.2f}) | "
                f"{at_active['eval_psnr']:.2f} (k={at_active['code_size']}) | "
                f"{row['best_val_psnr'] - at_active['eval_psnr']:+.2f}"
            )
        else:
            figures = "– | – | – | – | – | –"
        lines.append(
            f"| {row['name']} | {row['best_val_psnr']:.2f} | {figures} | {row['best_val_mean_activation']:.4f} | "
            f"{row['train_seconds']:.0f} | {ratio} |"
        )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(output, "results.md"), "w") as handle:
        handle.write(text)
    return text


def write_plot(rows: list[dict], baseline: dict, output: str) -> str:
    """sparse-frontier.png: eval PSNR against active units per image for the sparse codes, with the
    curves of PCA and of dense autoencoders whose whole code has that many units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    pca = sorted((int(k), v) for k, v in baseline["pca_psnr"].items())
    axes.plot([k for k, _ in pca], [v for _, v in pca], "--", color="tab:red", label="PCA-k (linear)")
    dense = sorted((r["config"]["latent_dim"], r["best_val_psnr"]) for r in rows if r["name"].startswith("dense_code"))
    if dense:
        axes.plot(
            [k for k, _ in dense], [v for _, v in dense], "s-", color="tab:gray", label="dense autoencoder, k-unit code"
        )
    for row in rows:
        code = row.get("code_sparsity")
        if not code or not row["config"].get("latent_top_k") and row["name"] != "dense_default":
            continue
        color = "tab:green" if row["name"] == DEFAULT_SETTING else "tab:blue"
        axes.scatter(code["active_units"], row["best_val_psnr"], color=color, zorder=3)
        axes.annotate(
            row["name"],
            (code["active_units"], row["best_val_psnr"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    axes.set_xscale("log", base=2)
    axes.set_xlabel("active units per image (eval split; for PCA and dense codes: code size)")
    axes.set_ylabel("eval PSNR (dB)")
    axes.set_title(f"{DATASET}: PSNR against the code's active units")
    axes.legend(loc="lower right", fontsize=8)
    path = os.path.join(output, "sparse-frontier.png")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def linear_curve(data_dir: str, output: str) -> dict:
    """PCA-k's eval PSNR for each of PCA_SIZES (one fit on the train split), cached in linear_baseline.json."""
    path = os.path.join(output, "linear_baseline.json")
    if os.path.exists(path):
        return json.load(open(path))
    from sparse_ae import linear_baseline
    from sparse_ae.data import load_images

    pca, summary = linear_baseline.fit_on_tfds(DATASET, "train", "test", max(PCA_SIZES), data_dir, download=False)
    curve = {
        str(k): linear_baseline.score(
            pca.truncated(k), load_images(DATASET, "test", data_dir, False).batch(4096).as_numpy_iterator()
        )["psnr"]
        for k in PCA_SIZES
    }
    result = {"eval_images": summary["eval_images"], "pca_psnr": curve}
    json.dump(result, open(path, "w"), indent=2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="tfds_data")
    parser.add_argument("--output", default="artifacts/sweep")
    parser.add_argument("--only", default="", help="comma-separated setting names (default: all)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table and plot from earlier runs")
    args = parser.parse_args()

    from sparse_ae import process

    process.setup()  # trains in this process: the library's AutoGraph rule (sparse_ae/process.py)
    os.makedirs(args.output, exist_ok=True)
    baseline = linear_curve(args.data_dir, args.output)
    names = [n for n in args.only.split(",") if n] or list(SETTINGS)
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")
    if not args.table_only:
        for name in names:
            summary = run_setting(name, SETTINGS[name], args.data_dir, args.output)
            code = summary["code_sparsity"]
            print(
                f"{name}: eval PSNR {summary['best_val_psnr']:.2f} dB, active units {code['active_units']:.1f}, "
                f"Hoyer {code['hoyer']:.2f}, dead {code['dead_fraction']:.0%}, zeroing cost "
                f"{code['zeroing_cost']:.2f} dB, {summary['train_seconds']:.0f} s",
                flush=True,
            )
    rows = collect(args.output)
    print(write_table(rows, baseline, args.output))
    print(f"wrote {write_plot(rows, baseline, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
