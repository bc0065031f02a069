"""What the notebooks in notebooks/ share: their parameters and showing one of the course's charts.

Parameters: a notebook's first code cell calls `notebook_params({...defaults...})`. The environment variable
`JGEN_NOTEBOOK_PARAMS`, when set, holds a JSON object that overrides some of those defaults, e.g.

    JGEN_NOTEBOOK_PARAMS='{"runs": "tmp/runs", "num_samples": 64}' jupyter nbconvert --execute --to notebook ...

An unknown name or a value of another type than its default is an error naming it (a typo never passes silently).
The test suite runs every notebook this way at tiny settings; the notebook's source is never edited.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import jgen
from course import CHARTS, MissingData, chart_inputs
from jgen.config import InputError

PARAMS_ENV = "JGEN_NOTEBOOK_PARAMS"


def notebook_params(defaults: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`defaults` with the values of the JSON object in $JGEN_NOTEBOOK_PARAMS (or `env`'s) put in their place.

    A value must have its default's type (an int may stand for a float, a list for a tuple); InputError names an
    unknown parameter, a value of another type, or JSON that is not an object."""
    text = (os.environ if env is None else env).get(PARAMS_ENV, "")
    if not text.strip():
        return dict(defaults)
    try:
        given = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f'${PARAMS_ENV}={text!r} is not JSON ({e}); give an object, e.g. \'{{"runs": "runs"}}\''
        ) from None
    if not isinstance(given, dict):
        raise InputError(f'${PARAMS_ENV}={text!r}: give a JSON object of parameters, e.g. \'{{"runs": "runs"}}\'')
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InputError(f"${PARAMS_ENV}: unknown parameter(s) {unknown}; this notebook's are {sorted(defaults)}")
    params = dict(defaults)
    for name, value in given.items():
        params[name] = _as_default_type(name, value, defaults[name])
    return params


def _as_default_type(name: str, value: Any, default: Any) -> Any:
    if default is None:
        return value
    if isinstance(value, bool) == isinstance(default, bool):  # True is an int to Python, not to a notebook
        if isinstance(value, type(default)):
            return value
        if isinstance(default, float) and isinstance(value, int):
            return float(value)
        if isinstance(default, tuple) and isinstance(value, list):
            return tuple(value)
    raise InputError(
        f"${PARAMS_ENV}: {name}={value!r} is a {type(value).__name__}; its default {default!r} is a "
        f"{type(default).__name__}: give a value of that type"
    )


def repository_root() -> str:
    """The folder holding the `jgen` package (the repository root of a checkout or an editable install): the folder
    the notebooks' relative paths (runs/, experiments/configs/) start from, as on the command line."""
    return os.path.dirname(os.path.dirname(os.path.abspath(jgen.__file__)))


def show_chart(chart_id: int, runs_dir: str, out_dir: str, **options) -> dict | None:
    """Chart `chart_id` from the runs under `runs_dir`: its extraction (with `options`, e.g. num_samples=200) drawn
    to `out_dir/<number>_<name>.png` and shown; returns the extracted data (plain arrays and tables).

    When the chart's runs are missing, prints them with the commands that make them and returns None; a chart's own
    error is raised (a notebook should stop there, not hide it)."""
    chart = CHARTS[chart_id]
    ready, missing, skipped = chart_inputs(chart, runs_dir)
    if skipped:
        print(f"chart {chart_id} needs runs that are not finished: {skipped.message}\nmake them with:")
        print("\n".join(f"  {c}" for c in skipped.commands))
        return None
    try:
        data = chart.extract(ready, **options)
    except MissingData as e:
        print(f"chart {chart_id} cannot be drawn from these runs: {e}")
        return None
    path = os.path.join(out_dir, chart.filename)
    chart.draw(data, path)
    print(
        f"chart {chart_id}: {chart.title} -> {path}" + (f" (not drawn from: {', '.join(missing)})" if missing else "")
    )
    try:
        from IPython.display import Image, display  # local: optional, present only inside Jupyter
    except ImportError:
        return data
    display(Image(filename=path))
    return data
