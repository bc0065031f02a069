"""The course's figures, drawn from real runs: `python -m jgen figures --runs runs --out figures [--only 12,21]`.

Modules by part of the course (autoencoders, gans, diffusion, landscape) hold each chart's two functions: a data
extraction that reads runs only through the public API (`jgen.run`, `read_metrics`, `Pipeline`,
`jgen.sampling.generate`, the metric functions) and returns plain arrays and tables, and a drawing function that
writes the PNG. `registry.CHARTS` lists them by chart number with the runs each needs.
"""

from jgen.figures.common import RUNS, MissingData, train_commands
from jgen.figures.registry import CHARTS, Chart, Outcome, draw_chart, draw_charts, parse_only

__all__ = ["CHARTS", "Chart", "Outcome", "RUNS", "MissingData", "draw_chart", "draw_charts", "parse_only",
           "train_commands"]
