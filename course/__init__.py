"""The course's figures, drawn from real runs: `python -m course --runs runs --out figures [--only 12,21]`.

Modules by part of the course (autoencoders, gans, diffusion, landscape) hold each chart's two functions: a data
extraction that reads runs only through the public API (`jgen.run`, `read_metrics`, `Pipeline`,
`jgen.sampling.generate`, the metric functions) and returns plain arrays and tables, and a drawing function that
writes the PNG. `registry.CHARTS` lists them by chart number with the runs each needs; `training.train_missing`
trains the runs they need that are not finished (`python -m course --train_missing`).
"""

from course.common import RUNS, MissingData, train_commands
from course.registry import CHARTS, Chart, Outcome, chart_inputs, draw_chart, draw_charts, parse_only
from course.training import PlannedRun, needed_runs, train_missing, training_plan

__all__ = [
    "CHARTS",
    "Chart",
    "Outcome",
    "PlannedRun",
    "RUNS",
    "MissingData",
    "chart_inputs",
    "draw_chart",
    "draw_charts",
    "needed_runs",
    "parse_only",
    "train_commands",
    "train_missing",
    "training_plan",
]
