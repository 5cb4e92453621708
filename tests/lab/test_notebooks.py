"""The course notebooks (examples/notebooks/) run top to bottom in a real kernel (nbclient,
ipykernel: this interpreter), each within 30 s, and are stored without outputs."""

import importlib.util
import pathlib
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[2] / "examples" / "notebooks")
                   .glob("*.ipynb"))
LIMIT_SECONDS = 30


def test_the_six_notebooks_are_there():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_", "06_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{path.name} is stored with outputs; clear them before committing."
    started = time.monotonic()
    nbclient.NotebookClient(notebook, timeout=LIMIT_SECONDS, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    elapsed = time.monotonic() - started
    assert elapsed < LIMIT_SECONDS, f"{path.name} took {elapsed:.0f} s"
    shown = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in shown if o.output_type == "error"]
    # graphs display inline: a PNG (matplotlib, the study plots) or an SVG (draw_graph)
    kinds = {kind for o in shown for kind in o.get("data", {})}
    assert kinds & {"image/png", "image/svg+xml"}
    if "fit(" in "".join(cell.source for cell in notebook.cells if "progress=False" not in
                         cell.source) and importlib.util.find_spec("ipywidgets"):
        # fit's progress bar is a notebook widget, not text
        assert "application/vnd.jupyter.widget-view+json" in kinds
