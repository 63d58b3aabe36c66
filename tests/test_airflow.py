"""The pipeline as a real Airflow 2 DAG: `airflow db migrate` and `airflow dags test` in a temporary
AIRFLOW_HOME (sqlite) execute every task on garment_shapes/small; a DagBag loads the folder."""

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from helpers import serving_listing, small_pipeline_overrides

from pipeline.airflow_runner import write_dag_file
from pipeline_config import load_config

pytestmark = pytest.mark.e2e  # every test here reads a pipeline run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AIRFLOW = os.path.join(os.path.dirname(sys.executable), "airflow")
TASKS = [
    "TFDSExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "live_model_statistics_resolver",
    "DriftValidator",
    "Trainer",
    "latest_blessed_model_resolver",
    "Evaluator",
    "ServingPusher",
]
EDGES = {
    ("TFDSExampleGen", "StatisticsGen"),
    ("StatisticsGen", "SchemaGen"),
    ("StatisticsGen", "ExampleValidator"),
    ("SchemaGen", "ExampleValidator"),
    ("TFDSExampleGen", "Trainer"),
    ("SchemaGen", "Trainer"),
    ("ExampleValidator", "Trainer"),  # anomalies stop the run before training
    ("StatisticsGen", "DriftValidator"),
    ("SchemaGen", "DriftValidator"),
    ("live_model_statistics_resolver", "DriftValidator"),
    ("DriftValidator", "Trainer"),  # drift, too
    ("TFDSExampleGen", "Evaluator"),
    ("Trainer", "Evaluator"),
    ("latest_blessed_model_resolver", "Evaluator"),
    ("Trainer", "ServingPusher"),
    ("Evaluator", "ServingPusher"),
}

DAGBAG_SCRIPT = """
import json, sys
from airflow.models import DagBag
bag = DagBag(sys.argv[1], include_examples=False)
dag = bag.dags.get("sparse_ae")
print("RESULT " + json.dumps({
    "import_errors": {path: str(error) for path, error in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "tasks": sorted(dag.task_ids) if dag else [],
    "edges": sorted([up, task.task_id] for task in dag.tasks for up in task.upstream_task_ids) if dag else [],
    "schedule": str(dag.schedule_interval) if dag else None,
}))
"""


@pytest.fixture(scope="module")
def airflow_run(garment_data_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    config = load_config(
        small_pipeline_overrides(home, garment_data_dir)
        + [
            "model.batch_size=64",
            "model.hidden_dims=64",
            "model.latent_dim=16",
            "gate.psnr_threshold=5",
            "gate.baseline=latest_blessed",
        ]
    )
    dags = home / "dags"
    dag_file = write_dag_file(config, str(dags))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "TF_CONFIG"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        PYTHONPATH=ROOT,
        TF_CPP_MIN_LOG_LEVEL="2",
        # Importing TFX takes longer than Airflow's default 30 s limit for parsing a DAG file here.
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="600",
    )

    def airflow(*args, timeout=900):
        return subprocess.run([AIRFLOW, *args], capture_output=True, text=True, env=env, cwd=str(home), timeout=timeout)

    migrate = airflow("db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    started = time.time()
    test = airflow("dags", "test", config.pipeline_name, "2026-01-01")
    seconds = time.time() - started
    bag = subprocess.run(
        [sys.executable, "-c", DAGBAG_SCRIPT, str(dags)], capture_output=True, text=True, env=env, timeout=300
    )
    return dict(config=config.absolute(), home=home, dag_file=dag_file, test=test, seconds=seconds, bag=bag)


def test_airflow_dags_test_executes_the_whole_pipeline(airflow_run):
    test, config = airflow_run["test"], airflow_run["config"]
    print(f"airflow dags test: {airflow_run['seconds']:.0f} s")
    assert test.returncode == 0, (test.stdout + test.stderr)[-5000:]
    with sqlite3.connect(airflow_run["home"] / "airflow.db") as db:
        states = dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (config.pipeline_name,)))
    assert states == {task: "success" for task in TASKS}, (test.stdout + test.stderr)[-5000:]

    # Evaluated and pushed into the serving directory.
    serving = serving_listing(config.serving_dir)
    assert len(serving) == 1 and os.path.exists(os.path.join(config.serving_dir, serving[0], "saved_model.pb"))


def test_airflow_run_is_recorded_in_ml_metadata(airflow_run):
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.run_summary import open_store

    config = airflow_run["config"]
    assert airflow_run["test"].returncode == 0
    store = open_store(config.resolved_metadata_path)
    assert store.get_context_by_type_and_name("pipeline", config.pipeline_name) is not None
    # TFX's Airflow launcher records the run under Airflow's run id, every execution in it.
    run = store.get_context_by_type_and_name("run", f"{config.pipeline_name}.manual__2026-01-01T00:00:00+00:00")
    assert run is not None
    executions = store.get_executions()
    assert {e.id for e in store.get_executions_by_context(run.id)} == {e.id for e in executions}
    components = {e.properties["component_id"].string_value for e in executions if "component_id" in e.properties}
    assert set(TASKS) - {"latest_blessed_model_resolver"} <= components
    complete = {metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED}
    assert all(e.last_known_state in complete for e in executions)
    blessings = store.get_artifacts_by_type("ModelBlessing")
    assert [b.custom_properties["blessed"].int_value for b in blessings] == [1]
    evaluations = store.get_artifacts_by_type("ModelEvaluation")
    assert len(evaluations) == 1 and os.path.isdir(evaluations[0].uri)
    pushed = store.get_artifacts_by_type("PushedModel")
    assert len(pushed) == 1 and pushed[0].custom_properties["pushed"].int_value == 1


def test_dag_folder_loads_in_a_dagbag_with_the_pipeline_graph(airflow_run):
    bag = airflow_run["bag"]
    assert bag.returncode == 0, bag.stderr[-3000:]
    loaded = json.loads(bag.stdout.split("RESULT ", 1)[1])
    assert loaded["import_errors"] == {}
    assert loaded["dags"] == ["sparse_ae"]
    assert loaded["tasks"] == sorted(TASKS)
    assert {tuple(edge) for edge in loaded["edges"]} == EDGES
    assert loaded["schedule"] == airflow_run["config"].airflow.schedule


PARSE_SCRIPT = """
import json, runpy, sys
dag = runpy.run_path(sys.argv[1])["DAG"]
print("RESULT " + json.dumps(sorted(dag.task_ids)))
"""


def test_parsing_the_dag_file_writes_nothing(garment_data_dir, tmp_path):
    """Airflow's scheduler parses the DAG file every few seconds: no folder of the pipeline appears."""
    config = load_config(small_pipeline_overrides(tmp_path / "pipeline", garment_data_dir))
    dag_file = write_dag_file(config, str(tmp_path / "dags"))
    home = tmp_path / "airflow"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "TF_"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    parsed = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, dag_file],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=900,
    )
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    assert json.loads(parsed.stdout.split("RESULT ", 1)[1]) == sorted(TASKS)
    assert not (tmp_path / "pipeline").exists()  # neither the pipeline root nor the metadata store's folder
