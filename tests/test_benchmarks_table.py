"""The README's performance table: its block is there and well-formed, and the generator
(benchmarks/readme_table.py) lays a measurement out exactly so. Nothing here times anything."""

import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("readme_table", ROOT / "benchmarks" / "readme_table.py")
readme_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_table)

MEASUREMENT = {
    "rows": [
        {"label": "toy 2-16-16-2 b64", "eager": 2.204, "flat": 1.886, "jit": 1.2,
         "torch": 4.47, "torch_fused": 3.356, "jax": None},
        {"label": "mid 784-512-512-10 b128", "eager": 0.93, "flat": 0.8349, "jit": None,
         "torch": 12.0, "torch_fused": 1.15},  # no jax key at all: also n/a
    ],
    "machine": {"cpu": "AMD EPYC", "cores": 2, "threads": 1, "date": "2026-12-05",
                "versions": {"Python": "3.11.7", "NumPy": "2.4.6", "PyTorch": "2.13.0+cpu"}},
}
EXPECTED = f"""<!-- perf-table:start -->
| model | ours eager | ours flat | ours jit | torch eager | torch fused | jax.jit + optax |
|---|---:|---:|---:|---:|---:|---:|
| toy 2-16-16-2 b64 | 2.20 | 1.89 | 1.20 | 4.47 | 3.36 | n/a |
| mid 784-512-512-10 b128 | 0.93 | 0.83 | n/a | 12.00 | 1.15 | n/a |

{readme_table.NOTE}

Machine: AMD EPYC, 2 cores, threads: 1; Python 3.11.7, NumPy 2.4.6, PyTorch 2.13.0+cpu; measured 2026-12-05.
<!-- perf-table:end -->"""
ROW = re.compile(r"^\| ((?:toy|small|mid) [\d-]+ b\d+) \| (.*) \|$")
MACHINE = re.compile(r"^Machine: .+, \d+ cores, threads: (\d+|default); Python [\w.+]+, NumPy [\w.+]+(, .+)?; "
                     r"measured \d{4}-\d\d-\d\d\.$")


def test_format_block_lays_a_measurement_out_exactly():
    assert readme_table.format_block(MEASUREMENT) == EXPECTED


def test_replace_block_swaps_only_what_is_between_the_markers():
    text = "intro\n<!-- perf-table:start -->\nold\n<!-- perf-table:end -->\noutro\n"
    assert readme_table.replace_block(text, "NEW") == "intro\nNEW\noutro\n"
    with pytest.raises(ValueError, match="no <!-- perf-table:start -->"):
        readme_table.replace_block("no markers here", "NEW")


def _readme_block():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Tests and benchmarks"):]
    section = section[:section.index("\n## ", 1)]
    assert "### Performance" in section, "the Performance heading sits under Tests and benchmarks"
    start, end = section.index(readme_table.START), section.index(readme_table.END)
    assert section.index("### Performance") < start
    return section[start:end + len(readme_table.END)].splitlines()


def test_the_readme_block_is_well_formed():
    lines = _readme_block()
    header = "| model | " + " | ".join(readme_table.COLUMNS.values()) + " |"
    assert lines[1] == header
    assert lines[2] == "|---|" + "---:|" * len(readme_table.COLUMNS)
    rows = [ROW.match(line) for line in lines[3:] if line.startswith("| ")]
    assert all(rows) and [r.group(1).split()[0] for r in rows] == list(readme_table.CONFIGS)
    for row in rows:
        cells = row.group(2).split(" | ")
        assert len(cells) == len(readme_table.COLUMNS)
        assert all(re.fullmatch(r"\d+\.\d\d", c) or c == readme_table.MISSING for c in cells)
        # the two eager columns run everywhere: always numbers
        assert all(re.fullmatch(r"\d+\.\d\d", c) for c in cells[:2]), row.group(0)
    assert readme_table.NOTE in "\n".join(lines)
    assert sum(bool(MACHINE.match(line)) for line in lines) == 1
