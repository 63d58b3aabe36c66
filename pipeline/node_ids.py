"""The pipeline's node ids, defined once: what ML Metadata records a run's executions and
artifacts under (`<node id>.<output key>` in a RunSummary's artifacts), read by the run summary,
the report and the tests. tests/test_pipeline_config.py checks them against create_pipeline's nodes."""

EXAMPLE_GEN = "TFDSExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
DRIFT_RESOLVER = "live_model_statistics_resolver"
DRIFT_VALIDATOR = "DriftValidator"
TUNER = "Tuner"
TRAINER = "Trainer"
BASELINE_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
PUSHER = "ServingPusher"
BULK_INFERRER = "BulkInferrer"


def output(node_id: str, key: str) -> str:
    """`<node id>.<output key>`: how a RunSummary names an artifact, e.g. output(TRAINER, "model")."""
    return f"{node_id}.{key}"
