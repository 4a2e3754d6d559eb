"""Running train.py in tests: small-run flags and subprocess launches (the data: conftest's
``davis_root``)."""
import os
import socket
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--no_subset", "--crop_size", "64", "--key_backbone", "resnet18", "--no_pretrained", "--num_workers", "0",
         "--batch_size", "1", "--log_every", "1", "--device", "cpu"]


def stage3_args(davis_root, tmp_path, run_id, *extra):
    return ["--stage", "3", "--id", run_id, "--main_data", "davis", "--davis_root", davis_root,
            "--save_dir", str(tmp_path / "saves"), "--log_dir", str(tmp_path / "runs"), *SMALL, *extra]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command, extra_env=None):
    # One thread per process: two ranks share the 2 cores of a CI machine.
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(extra_env or {})}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
