"""Train steps/s of an experiment on 1 and N host (CPU) devices, measured by the real training loop.

    python benchmarks/train_throughput.py --config experiments/configs/vae_mnist.py --devices 1,8 --steps 400

Each device count runs in a fresh process with XLA_FLAGS=--xla_force_host_platform_device_count=N. The figure
is the median of the loop's own `steps_per_sec` rows in metrics.jsonl, skipping the first (compilation).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(config: str, devices: int, steps: int, log_every: int) -> float:
    with tempfile.TemporaryDirectory() as workdir:
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
               "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
        cmd = [sys.executable, "-m", "jgen", "train", "--config", config, "--workdir", workdir,
               f"--config.train.steps={steps}", f"--config.train.log_every={log_every}",
               "--config.train.eval_every=0", "--config.train.sample_every=0",
               f"--config.train.checkpoint_every={steps}", "--config.train.progress=False",
               "--config.train.num_eval_examples=200", "--config.train.eval_batch_size=200"]
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"{devices} devices: the run failed:\n{r.stderr[-3000:]}")
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f]
        rates = [r["steps_per_sec"] for r in rows if r["split"] == "train"][1:]
        return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="experiments/configs/vae_mnist.py")
    p.add_argument("--devices", default="1,8")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--log_every", type=int, default=50)
    a = p.parse_args()
    print(f"{'devices':>8} {'steps/s':>8}  ({a.config}, {a.steps} steps)")
    for n in [int(x) for x in a.devices.split(",")]:
        print(f"{n:>8} {measure(a.config, n, a.steps, a.log_every):>8.2f}", flush=True)


if __name__ == "__main__":
    main()
