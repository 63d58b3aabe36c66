# The image every Kubeflow Pipelines / Vertex AI step of the pipeline runs in: the official TFX
# image of the pinned version (its Python, TFX, TensorFlow, Beam) plus this project, installed
# with the same constraints as everywhere else. Its name is the config's `container_image`.
#   docker build -t gcr.io/<project>/sparse-ae-tfx:<tag> . && docker push gcr.io/<project>/sparse-ae-tfx:<tag>
FROM gcr.io/tfx-oss-public/tfx:1.16.0

# TFX 1.16's Trainer and TFMA need Keras 2 (tf_keras). pipeline.process.setup() sets this in every entry
# point of ours, but TFX's container entrypoint imports TensorFlow before any of our code runs.
ENV TF_USE_LEGACY_KERAS=1

WORKDIR /sparse_ae_tfx
COPY setup.py constraints.txt pipeline_config.py ./
COPY sparse_ae/ sparse_ae/
COPY components/ components/
COPY pipeline/ pipeline/
# Not editable: the steps import the installed package (pipeline.trainer_module.run_fn, the components).
# The kubeflow extra: TFX's container entrypoint imports kfp's pipeline_spec (not a TFX requirement), here
# at the version the constraints pin; tests/test_kubeflow.py checks every package the steps import is here.
# The command line works without benchmarks/ (left out here); tests/test_import_graph.py checks the same.
RUN pip install --no-cache-dir -c constraints.txt ".[kubeflow]" \
    && python -c "import pipeline.pipeline, sparse_ae.model, tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor" \
    && sparse-ae --help > /dev/null
