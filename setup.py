"""Sparse autoencoder for images, trained, gated and shipped by a TFX pipeline."""

from setuptools import find_packages, setup

# Loose ranges here; the exact working set is pinned in constraints.txt (install with -c).
CORE = [
    "tfx>=1.16,<1.17",
    "tensorflow>=2.16,<2.17",
    "tf-keras>=2.16,<2.17",
    "tensorflow-datasets>=4.9",
    "apache-beam",
    "dill",
    "pydantic>=2",
    "matplotlib",
]
EXTRAS = {
    "dev": ["pytest", "pytest-timeout", "pytest-xdist", "ruff", "mypy", "nbformat", "nbclient", "ipykernel"],
    "kubeflow": ["kfp==2.4.0"],
    "airflow": ["apache-airflow<3"],
    "tuner": ["keras-tuner"],
}

setup(
    name="sparse-ae-tfx",
    version="0.1.0",
    description=__doc__,
    python_requires="==3.10.*",
    packages=find_packages(include=["sparse_ae*", "components*", "pipeline*", "benchmarks*"]),
    py_modules=["pipeline_config"],
    package_data={"pipeline.report": ["report.html.j2"]},
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["sparse-ae=pipeline.cli:main"]},
)
