"""Runs many bad-input rows in one process (one Python and JAX start for all of them): reads a JSON list of rows on
stdin, writes one JSON result per row on stdout.

A row is {"kind": "jgen" | "course" | "api", "args": [...] or "code": "...", "lock": a workdir to hold or null}.
Each runs in a fresh empty folder (its working directory), with what it prints on stderr captured at the file
descriptor (so library and C++ logging are caught too). Result: {"code": exit code, or the exception's type for
"api", "stderr", "message" (api), "changed": files created, changed or removed under the row's folder and `watch`}.

    python -m tests.bad_input_driver WATCH_DIR < rows.json
"""

import contextlib
import fcntl
import json
import os
import sys
import tempfile


def snapshot(*roots: str) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file and folder under `roots`."""
    seen = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                st = os.lstat(path)
                seen[path] = (st.st_size if name in files else 0, st.st_mtime_ns if name in files else 0)
    return seen


@contextlib.contextmanager
def captured_stderr():
    """What is written to file descriptor 2 in the body, as the list's one string afterwards."""
    out: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            out.append(f.read().decode(errors="replace"))


def run_row(row: dict, folder: str, names: dict) -> dict:
    from jgen import cli

    result: dict = {}
    lock_fd = None
    if row.get("lock"):  # as if another train held this workdir: an flock on its lock file (which exists already)
        lock_fd = os.open(os.path.join(row["lock"], "lock"), os.O_RDONLY)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        with captured_stderr() as err:
            if row["kind"] == "jgen":
                sys.argv = ["jgen", *row["args"]]
                try:
                    cli.main()
                    result["code"] = 0
                except SystemExit as e:
                    result["code"] = e.code if isinstance(e.code, int) else 1
            elif row["kind"] == "course":
                from course.__main__ import main

                result["code"] = main(row["args"])
            else:
                try:
                    exec(row["code"], dict(names))
                    result["code"] = "no exception"
                except Exception as e:  # the row asserts which
                    result["code"], result["message"] = type(e).__name__, str(e)
                    result["is_value_error"] = isinstance(e, ValueError)
        result["stderr"] = err[0]
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
    return result


def main() -> None:
    watch = sys.argv[1]
    rows = json.load(sys.stdin)
    names: dict = {}
    exec(
        "import numpy as np\n"
        "from jgen.compare import compare_workdirs\n"
        "from jgen.pipeline import Pipeline\n"
        "from jgen.run import load_config, load_run, read_config, train_and_evaluate\n"
        "from tests.conftest import tiny_config\n",
        names,
    )
    start = os.getcwd()
    results = []
    for i, row in enumerate(rows):
        folder = tempfile.mkdtemp(prefix=f"row{i}_")
        os.chdir(folder)
        before = snapshot(folder, watch)
        try:
            result = run_row(row, folder, {**names, "tmp": folder})
        except BaseException as e:  # a row that breaks the driver is reported as that row's failure
            result = {"code": f"driver: {type(e).__name__}: {e}", "stderr": ""}
        after = snapshot(folder, watch)
        result["changed"] = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
        os.chdir(start)
        results.append(result)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
