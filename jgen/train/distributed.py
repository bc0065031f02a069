"""Multi-process runs: `jax.distributed` start-up from flags or environment, and the agreements every process of a
job must reach (the same config; when to stop).

A job of N processes (one per host of a TPU pod, one per GPU node, or N local CPU processes) runs the same command
on every process. `initialize` connects them before any other JAX call:

    initialize(DistributedSpec(coordinator_address="host0:1234", num_processes=2, process_id=0))  # explicit
    initialize(DistributedSpec(auto=True))     # JAX's own cluster detection (TPU pods, SLURM, Open MPI)

After it, `jax.devices()` lists every process's devices; each process feeds only its local ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jgen.config import InputError

ENV = {
    "coordinator_address": "JGEN_COORDINATOR_ADDRESS",
    "num_processes": "JGEN_NUM_PROCESSES",
    "process_id": "JGEN_PROCESS_ID",
}


@dataclasses.dataclass(frozen=True)
class DistributedSpec:
    """How this process joins a job. Nothing set: a single-process run (`jax.distributed` is not started)."""

    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    auto: bool = False  # jax.distributed.initialize()'s own cluster auto-detection

    @property
    def explicit(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "auto" and v is not None}

    @property
    def wanted(self) -> bool:
        return self.auto or bool(self.explicit)


def spec_from(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    mode: str = "off",
    environ=None,
) -> DistributedSpec:
    """The spec of command-line values, each falling back to its JGEN_* environment variable (flags win).
    `mode`: "off" (start only when an address/count/id is given) or "auto". Raises InputError for a bad value."""
    environ = os.environ if environ is None else environ
    if mode not in ("off", "auto"):
        raise InputError(
            f"--distributed={mode!r}: must be 'auto' (JAX detects the cluster: TPU pod, SLURM, Open "
            "MPI) or 'off' (start only with --coordinator_address/--num_processes/--process_id)"
        )
    values = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
    for name, var in ENV.items():
        if values[name] is None and environ.get(var, "") != "":
            text = environ[var]
            if name == "coordinator_address":
                values[name] = text
                continue
            try:
                values[name] = int(text)
            except ValueError:
                raise InputError(f"{var}={text!r}: must be an integer") from None
    spec = DistributedSpec(**values, auto=mode == "auto")
    n, p, addr = spec.num_processes, spec.process_id, spec.coordinator_address
    if n is not None and n < 1:
        raise InputError(f"--num_processes={n}: must be >= 1")
    if p is not None and (p < 0 or (n is not None and p >= n)):
        raise InputError(f"--process_id={p}: must be in [0, num_processes)" + (f" = [0, {n})" if n else ""))
    if addr is not None and (":" not in addr or not addr.rsplit(":", 1)[1].isdigit()):
        raise InputError(f"--coordinator_address={addr!r}: must be host:port, e.g. 10.0.0.1:1234")
    if spec.explicit and not spec.auto:
        missing = [k for k in values if values[k] is None]
        if missing:
            raise InputError(
                f"a multi-process run needs all of --coordinator_address, --num_processes and "
                f"--process_id (or {', '.join(ENV.values())}); missing: "
                + ", ".join("--" + m for m in missing)
                + ". Or pass --distributed=auto on a cluster "
                "JAX detects by itself (TPU pod, SLURM, Open MPI)"
            )
    return spec


def initialize(spec: DistributedSpec) -> bool:
    """Start `jax.distributed` as `spec` says (before any other JAX call); False when it asks for nothing."""
    if not spec.wanted:
        return False
    jax.distributed.initialize(**spec.explicit)
    return True


def config_digest(text: str) -> np.ndarray:
    """8 bytes of the SHA-256 of a config's JSON, as two uint32 words (what processes compare)."""
    return np.frombuffer(hashlib.sha256(text.encode()).digest()[:8], dtype=np.uint32).copy()


def check_same_config(config_json: str) -> None:
    """InputError on every process when the processes of this job do not hold the same config (a job launched
    with different overrides on different hosts would otherwise train a silently mixed model)."""
    if jax.process_count() == 1:
        return
    digests = np.asarray(multihost_utils.process_allgather(config_digest(config_json)))
    digests = digests.reshape(jax.process_count(), -1)
    groups: dict[bytes, list[int]] = {}
    for p, d in enumerate(digests):
        groups.setdefault(d.tobytes(), []).append(p)
    if len(groups) > 1:
        mine = groups[digests[jax.process_index()].tobytes()]
        others = sorted(p for g in groups.values() if g is not mine for p in g)
        raise InputError(
            f"the processes of this job hold different configs: process {jax.process_index()} "
            f"(same as processes {mine}) differs from processes {others}. Launch every process with "
            "the same --config file and --config.* overrides"
        )


class StopAgreement:
    """Agrees across processes on the step at which to stop after a signal reached any of them.

    Each step, every process contributes its local flag to a tiny all-reduce (max), started right after the step
    is dispatched and read one step later, so the host never waits for it and the dispatch pipeline stays one step
    deep. All processes read the same reduced value at the same step, so all stop at the same step and save the
    same checkpoint. With one process it is the local flag itself, with no collective.
    """

    def __init__(self, mesh):
        self.multi = jax.process_count() > 1
        self._pending = None
        if self.multi:
            self._in = NamedSharding(mesh, P(mesh.axis_names))
            self._local = len(mesh.local_devices)
            self._reduce = jax.jit(lambda x: x.max(), out_shardings=NamedSharding(mesh, P()))

    def __call__(self, local_flag: bool) -> bool:
        """Whether to stop after this step (a flag raised here is honoured one step later with many processes)."""
        if not self.multi:
            return bool(local_flag)
        previous = self._pending
        flags = np.full((self._local,), np.int32(bool(local_flag)))
        self._pending = self._reduce(jax.make_array_from_process_local_data(self._in, flags))
        return bool(previous is not None and int(previous))

    def flush(self) -> bool:
        """The agreed value of the last flags sent (blocks); for a decision that cannot wait a step."""
        if not self.multi or self._pending is None:
            return False
        return bool(int(self._pending))
