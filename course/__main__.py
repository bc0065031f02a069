"""`python -m course`: draw the course's charts from the runs under --runs, after training the missing ones with
--train_missing (`make figures`).

    python -m course --runs runs --out figures                # every chart whose runs exist
    python -m course --runs runs --out figures --only 12,21   # some of them
    python -m course --runs runs --out figures --train_missing # train what they need first (all or --only's)

Exit codes: 0 when every chart that could be drawn was; 2 for bad input (an unknown --only chart) or when a chart
named by --only could not be drawn; 1 when a chart failed (its traceback is printed, the others are still drawn);
a training run's own code when it stopped (75: interrupted, rerun to resume).
"""

from __future__ import annotations

import argparse
import os
import sys

from course.registry import draw_charts, parse_only
from course.training import train_missing
from jgen.cli import EXIT_BAD_INPUT, EXIT_ERROR, EXIT_OK
from jgen.config import InputError, check_output


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m course", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--runs", default="runs", help="the folder holding the run directories (gan_mnist, ddpm_mnist, ...)")
    p.add_argument("--out", default="figures", help="the folder the PNGs are written to")
    p.add_argument("--only", default="", help="draw only these charts, e.g. 12,21 (default: every chart)")
    p.add_argument(
        "--train_missing",
        action="store_true",
        help="first train (or resume) every run the charts need that is not finished, in dependency order, with "
        "the commands the skip messages print; then draw",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Draw the charts `argv` asks for; the exit code (see the module docstring)."""
    args, unknown = parser().parse_known_args(argv)
    if unknown:
        print(f"course: error: unrecognised argument(s) {unknown}; see python -m course --help", file=sys.stderr)
        return EXIT_BAD_INPUT
    only = [v for v in args.only.split(",") if v]
    try:
        ids = parse_only(only)
        check_output("--out", args.out, directory=True)  # before any chart is drawn or run trained
        if os.path.exists(args.runs) and not os.path.isdir(args.runs):
            raise InputError(f"--runs={args.runs!r} is a file; pass the folder that holds the run directories")
    except InputError as e:
        print(f"course: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.train_missing:
        code = train_missing(ids, args.runs)
        if code != EXIT_OK:
            return code
    outcomes = draw_charts(args.runs, args.out, ids)
    drawn = [o.chart for o in outcomes if o.status == "drawn"]
    skipped = [o.chart for o in outcomes if o.status == "skipped"]
    failed = [o.chart for o in outcomes if o.status == "failed"]
    print(
        f"drew {len(drawn)} of {len(outcomes)} charts into {args.out}/: {drawn}"
        + (f"; skipped {skipped} (their runs are missing: the commands above make them)" if skipped else "")
        + (f"; FAILED {failed}" if failed else "")
    )
    if failed:
        return EXIT_ERROR
    if only and skipped:
        print(f"course: error: chart(s) {skipped} named by --only could not be drawn (see above)", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
