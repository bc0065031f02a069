"""Start N local processes of one jgen command as one multi-process JAX job; the template for a pod or SLURM job.

    python experiments/launch_local.py --num_processes 2 --devices_per_process 2 -- \\
        train --config experiments/configs/vae_mnist.py --workdir runs/vae_2proc

Each process runs `python -m jgen <command...> --coordinator_address=localhost:<free port> --num_processes=N
--process_id=i`; on a real cluster every host runs that same line with its own --process_id (or, on a TPU pod,
SLURM or Open MPI, just `--distributed=auto`), and the coordinator address is process 0's host. Output lines are
streamed prefixed with `[i]`. SIGTERM/SIGINT sent to the launcher are passed on to every process (they agree on a
step, save one checkpoint and exit 75). When a process fails, the others get `--grace` seconds to stop by
themselves and are then killed (a process waiting in a collective for a dead peer cannot stop on its own).

Exit code: 0 when every process finished; otherwise the worst one: an error (1, 2, 3, 74, a signal as 128+n)
outranks 75 (interrupted after saving a checkpoint: rerun to resume), which outranks 0. `--devices_per_process`
sets XLA_FLAGS=--xla_force_host_platform_device_count and JAX_PLATFORMS=cpu: fake host devices for trying
multi-device code on a CPU.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERRUPTED = 75


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def worst(codes: list[int]) -> int:
    """0 < 75 (interrupted, resumable) < any other failure; among failures the largest code."""
    codes = [128 - c if c < 0 else c for c in codes]  # a process killed by signal n: 128 + n, as a shell says
    failures = [c for c in codes if c not in (0, INTERRUPTED)]
    if failures:
        return max(failures)
    return INTERRUPTED if INTERRUPTED in codes else 0


def _stream(i: int, pipe, out) -> None:
    for line in pipe:
        out.write(f"[{i}] {line}")
        out.flush()


def launch(
    command: list[str],
    num_processes: int,
    devices_per_process: int | None = None,
    grace: float = 30.0,
    env: dict | None = None,
    out=None,
) -> int:
    """Run `python -m jgen <command>` as `num_processes` processes of one job; returns the worst exit code."""
    out = out or sys.stdout
    port = free_port()
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    if devices_per_process:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
        env["JAX_PLATFORMS"] = "cpu"
    procs = []
    for i in range(num_processes):
        cmd = [
            sys.executable,
            "-m",
            "jgen",
            *command,
            f"--coordinator_address=localhost:{port}",
            f"--num_processes={num_processes}",
            f"--process_id={i}",
        ]
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out.write(f"[launch] process {i} pid {p.pid}: {' '.join(cmd[1:])}\n")
        out.flush()
        procs.append(p)
    threads = [threading.Thread(target=_stream, args=(i, p.stdout, out), daemon=True) for i, p in enumerate(procs)]
    for t in threads:
        t.start()

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        failed_at = None
        while any(p.poll() is None for p in procs):
            if failed_at is None and any(p.poll() not in (None, 0, INTERRUPTED) for p in procs):
                failed_at = time.time()
            if failed_at is not None and time.time() - failed_at > grace:
                for i, p in enumerate(procs):
                    if p.poll() is None:
                        out.write(f"[launch] process {i} still runs {grace:.0f} s after another failed: killed\n")
                        p.kill()
            time.sleep(0.1)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    for t in threads:
        t.join(timeout=5)
    codes = [p.returncode for p in procs]
    out.write(f"[launch] exit codes {codes}\n")
    out.flush()
    return worst(codes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        usage="launch_local.py --num_processes N [--devices_per_process D] -- train --config ... --workdir ...",
    )
    parser.add_argument("--num_processes", type=int, required=True)
    parser.add_argument(
        "--devices_per_process",
        type=int,
        default=None,
        help="fake CPU devices per process (sets XLA_FLAGS and JAX_PLATFORMS=cpu)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds the others get to stop after one process fails, before they are killed",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the jgen command and its flags")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the jgen command after --, e.g. -- train --config ... --workdir ...")
    if args.num_processes < 1:
        parser.error(f"--num_processes={args.num_processes}: must be >= 1")
    return launch(command, args.num_processes, args.devices_per_process, args.grace)


if __name__ == "__main__":
    sys.exit(main())
