"""tf.distribute: MirroredStrategy over two logical CPU devices, and MultiWorkerMirroredStrategy
across two real worker processes on this machine (loopback only).

Devices and strategies must be set up before TensorFlow initialises, so each run is a fresh
Python process.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(hidden_dims=[64], latent_dim=16, batch_size=64, epochs=2, shuffle_buffer=0)

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    import tf_keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from sparse_ae import process
    process.setup()  # as the library's entry points do (sparse_ae/process.py)
    from sparse_ae.config import SparseAEConfig
    from sparse_ae.data import load_images, to_pairs
    from sparse_ae.distribute import create_strategy
    from sparse_ae.model import build_model

    data_dir, values = sys.argv[1], json.loads(sys.argv[2])
    images = load_images("garment_shapes/small", "train", data_dir=data_dir, download=False).take(1024)
    histories = {}
    for name in ("default", "mirrored"):
        config = SparseAEConfig(**values, distribution_strategy=name)
        strategy = create_strategy(config)
        tf_keras.utils.set_random_seed(config.seed)  # the same initial weights for both strategies
        model = build_model(config, strategy)
        history = model.fit(to_pairs(images, config, training=True), epochs=config.epochs, verbose=0)
        histories[name] = {"replicas": strategy.num_replicas_in_sync, **history.history}
    print("RESULT " + json.dumps(histories))
""")

WORKER_SCRIPT = textwrap.dedent("""
    import json, sys
    from sparse_ae import process
    from sparse_ae.config import SparseAEConfig
    from sparse_ae.train import train

    process.setup()  # as the library's entry points do (sparse_ae/process.py)

    data_dir, output_dir, report, values = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    config = SparseAEConfig(**values, distribution_strategy="multi_worker_mirrored")
    summary = train(config, "garment_shapes/small", output_dir, data_dir=data_dir, download=False, verbose=0)
    with open(report, "w") as handle:
        json.dump(summary, handle)
""")


def python_env(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT, **extra)
    return env


@pytest.mark.slow  # trains in fresh interpreters
def test_mirrored_strategy_on_two_cpu_devices_matches_one_device(garment_data_dir):
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, garment_data_dir, json.dumps(SMALL)],
        capture_output=True,
        text=True,
        timeout=600,
        env=python_env(),
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    histories = json.loads(result.stdout.split("RESULT ", 1)[1])
    single, mirrored = histories["default"], histories["mirrored"]
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    assert mirrored["loss"][-1] < mirrored["loss"][0]
    # Same data, same initial weights: the loss scaled by the global batch gives the same update
    # (up to the KL term, computed on each replica's half-batch), and metrics aggregate over replicas.
    for name in ("loss", "recon_loss", "psnr", "mean_activation"):
        assert mirrored[name] == pytest.approx(single[name], rel=2e-2), name


def free_ports(count: int) -> list:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow  # trains in fresh interpreters
def test_multi_worker_mirrored_strategy_across_two_processes(garment_data_dir, tmp_path):
    output = tmp_path / "model"
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER_SCRIPT,
                    garment_data_dir,
                    str(output),
                    str(tmp_path / f"report_{index}.json"),
                    json.dumps({**SMALL, "shuffle_buffer": 256}),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=python_env(TF_CONFIG=tf_config),
                cwd=ROOT,
            )
        )
    logs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(log[-2000:] for log in logs)

    chief, other = (json.loads((tmp_path / f"report_{index}.json").read_text()) for index in range(2))
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["epochs_run"] == other["epochs_run"] == 2
    assert sorted(chief["history"]) == sorted(other["history"])
    for name, values in chief["history"].items():
        assert values == pytest.approx(other["history"][name], rel=1e-6), name
    assert chief["history"]["loss"][-1] < chief["history"]["loss"][0]
    # Only the chief wrote into the shared output directory, and nothing of the other worker remains.
    assert sorted(os.listdir(output)) == ["logs", "metrics.json", "sparse_autoencoder.weights.h5"]
    assert json.loads((output / "metrics.json").read_text())["history"] == chief["history"]
