"""Regenerate the README's performance table from ``mlp_step.py``'s quick measurements.

It times one training step of the toy, small and mid MLPs (``mlp_step.measure``: every column
in the same process, alternating windows), turns each column's median per-window ratio to hand
NumPy into a Markdown table, names the machine, and rewrites the block between
``<!-- perf-table:start -->`` and ``<!-- perf-table:end -->`` in README.md (a temporary file
renamed over it, so an interrupted run leaves the old README whole).

    python benchmarks/readme_table.py --write --threads 1   # = make bench-readme (a minute)
    python benchmarks/readme_table.py                       # only print it (`make bench` does)

This module imports only the standard library at the top: the formatting is tested without
running (or importing) any benchmark.
"""

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
START, END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"
CONFIGS = ("toy", "small", "mid")
COLUMNS = {  # mlp_step's column key -> the table's heading
    "eager": "ours eager",
    "flat": "ours flat",
    "jit": "ours jit",
    "torch": "torch eager",
    "torch_fused": "torch fused",
    "jax": "jax.jit + optax",
}
MISSING = "n/a"  # a column this machine could not run (not installed, no tg.jit)
NOTE = """\
Time of one training step (forward, cross-entropy, backward, Adam, zero_grad; float32) over
hand-written NumPy's with preallocated buffers: the median of per-window ratios, every column
timed in one process in alternating windows (`benchmarks/mlp_step.py`; `op_overhead.py` shows
the same columns per op and per Adam step). Lower is faster; 1.00 is NumPy's time. Ours eager
is the per-parameter Adam, ours flat the default flat-buffer Adam, ours jit the step captured
by `tg.jit`; PyTorch and JAX (never a dependency) run when installed; n/a marks a column
the measuring machine could not run. Threads: those of NumPy's BLAS and PyTorch's OpenMP
(JAX's XLA keeps its own pool). Regenerate with `make bench-readme`."""


def machine(threads):
    """What the numbers were measured on: CPU model, cores, the threads asked of BLAS and
    OpenMP (``threads``, None for the libraries' default), library versions, the date."""
    import numpy  # already loaded by mlp_step: imported here to keep the top stdlib-only

    cpu = platform.processor() or platform.machine()
    try:  # Linux names the model; elsewhere platform's answer stands
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {"Python": platform.python_version(), "NumPy": numpy.__version__}
    for label, module in (("PyTorch", "torch"), ("JAX", "jax")):
        if module in sys.modules:  # mlp_step imported it when installed
            versions[label] = sys.modules[module].__version__
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads or "default",
            "versions": versions,
            "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat()}


def format_block(measurement):
    """The README block, markers included, for ``measurement = {"rows": [{"label": ...,
    <column key>: ratio or None, ...}, ...], "machine": machine()}``: a Markdown table with
    one row per model and one column per ``COLUMNS`` entry (ratios with two decimals, ``n/a``
    where a column is missing or None), the note, and the machine line."""
    header = "| model | " + " | ".join(COLUMNS.values()) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    rows = []
    for row in measurement["rows"]:
        cells = [MISSING if row.get(key) is None else f"{row[key]:.2f}" for key in COLUMNS]
        rows.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    m = measurement["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    machine_line = (f"Machine: {m['cpu']}, {m['cores']} cores, threads: {m['threads']}; "
                    f"{versions}; measured {m['date']}.")
    return "\n".join([START, header, rule, *rows, "", NOTE, "", machine_line, END])


def replace_block(text, block):
    """``text`` with everything from the start marker through the end marker replaced by
    ``block``."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"readme_table: README.md has no {START} ... {END} block to rewrite; "
                         "put the two markers where the table belongs (under "
                         "'### Performance') and run it again.")
    return text[:start] + block + text[end + len(END):]


def write_atomically(path, text):
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def measure(windows, window_s, threads):
    """Run mlp_step's race on CONFIGS; the measurement ``format_block`` takes."""
    import mlp_step  # with NumPy, PyTorch and JAX: only now, after limit_threads

    results, missing = mlp_step.measure(CONFIGS, windows, window_s)
    for sentence in missing:
        print(sentence)
    rows = [{"label": r["label"], **{key: r["ratio"].get(key) for key in COLUMNS}}
            for r in results.values()]
    return {"rows": rows, "machine": machine(threads)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help="rewrite README.md's block (without it the block is only printed)")
    parser.add_argument("--windows", type=int, default=9, help="alternating windows")
    parser.add_argument("--window-s", type=float, default=0.15, help="seconds per window")
    parser.add_argument("--threads", type=int, help="BLAS and OpenMP threads (default: the "
                        "libraries' own choice); named in the machine line")
    args = parser.parse_args(argv)
    if str(HERE) not in sys.path:  # the sibling modules, also when imported from elsewhere
        sys.path.insert(0, str(HERE))
    if args.threads:
        from _threads import limit_threads

        limit_threads(args.threads)
    block = format_block(measure(args.windows, args.window_s, args.threads))
    print(block)
    if args.write:
        write_atomically(README, replace_block(README.read_text(encoding="utf-8"), block))
        print(f"\nrewrote the performance block of {README}")


if __name__ == "__main__":
    main()
