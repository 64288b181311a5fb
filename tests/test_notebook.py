"""notebooks/clearing-under-load.ipynb runs from top to bottom on this checkout's interpreter,
and is committed without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "clearing-under-load.ipynb"
KERNEL = "cardsim-test"


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), (
        "strip the outputs before committing (e.g. jupyter nbconvert --clear-output --inplace)"
    )


def this_interpreter(folder: Path) -> KernelManager:
    """A kernel manager for a kernel on sys.executable, whatever kernels the machine has."""
    spec = folder / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "cardsim tests", "language": "python"})
    )
    return KernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder)])
    )


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    client = NotebookClient(
        nb,
        km=this_interpreter(tmp_path / "kernels"),
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    printed = "".join(
        out.get("text", "") for cell in code for out in cell.outputs if out.output_type == "stream"
    )
    figures = sum("image/png" in out.get("data", {}) for cell in code for out in cell.outputs)
    assert printed.rstrip().endswith(sys.executable), "the notebook ran on another interpreter"
    assert figures == 4, f"expected the four figures, got {figures}"
    assert "Erlang C" in printed
    assert "smallest number of workers meeting tap_to_cleared_p95_s<=600" in printed
