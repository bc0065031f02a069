"""Autoguidance's guiding model (Karras et al. 2024): another run, loaded here and attached to a run's method.

    run = load_run("runs/edm_mnist")
    name = attach_guide(run, "runs/edm_mnist", step=500)        # an earlier checkpoint of the same run
    spec = run.method.sampling_spec(guidance=2.0, guide=name)   # D = D_guide + 2 (D_main - D_guide)

Methods never read files: the run layer loads the guide and hands its method and EMA parameters to
`method.attach_guide`, which checks that it models the same data on the same schedule. The name, the guide's resolved
path and step, travels in the `SamplingSpec` (and so in an evaluation's row), which keeps the guide's identity with
every result made with it.
"""

from __future__ import annotations

import os

from jgen.config import InputError
from jgen.run.workdir import Run, load_run


def attach_guide(run: Run, guide_workdir: str, step: int | None = None) -> str:
    """Load `guide_workdir` (its newest checkpoint, or `step`) as the guiding model of `run`; its name for
    `sampling_spec(guide=...)`: `<resolved path>@<step>`."""
    if "autoguidance" not in run.method.capabilities:
        raise InputError(
            f"a guiding model applies to diffusion runs; {run.workdir!r} is a {run.method.name!r} run: "
            "drop --guide_workdir"
        )
    guide = load_run(guide_workdir, step)
    name = f"{os.path.realpath(guide_workdir)}@{guide.step}"
    run.method.attach_guide(name, guide.method, guide.state.ema_params)
    return name
