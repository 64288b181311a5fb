"""DIR/report.html: one self-contained page (inline CSS, images as data URIs, no scripts)
rendered from a jinja2 template shipped inside the package, with autoescaping on.

Everything on the page comes from the files in DIR, and nothing on it reads a clock or names
the folder, so rebuilding the report of a finished run gives the bytes the run wrote.
"""

from __future__ import annotations

import base64
import os
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from cardsim.report.folder import RunFolder, SweepFolder, load_folder
from cardsim.report.plots import Plot, run_plots
from cardsim.report.run_context import run_context
from cardsim.report.sweep_context import sweep_context

REPORT = "report.html"
PLOTS = "plots"
TEMPLATE = "report.html.j2"


def _template_source(name: str) -> str:
    """A template's text from the installed package (works from a wheel or a zip too)."""
    return resources.files("cardsim.report").joinpath("templates", name).read_text("utf-8")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["data_uri"] = data_uri
    return env


def data_uri(png: bytes) -> str:
    """A PNG as a data: URI, so the page needs no file beside it."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render(folder: RunFolder | SweepFolder, plots: list[Plot], missing: list[str]) -> str:
    """The page as text."""
    if isinstance(folder, RunFolder):
        context = run_context(folder, plots, missing)
    else:
        context = sweep_context(folder)
    return _environment().get_template(TEMPLATE).render(**context)


def write_report(path: Path, summary: dict[str, Any] | None = None) -> Path:
    """Write DIR/report.html (and, for a run, DIR/plots/*.png); returns the report's path.

    `summary` is the summary.json document when the caller has not written it yet.
    Raises InputError when DIR is not a run, sweep or capacity folder.
    """
    folder = load_folder(path, summary)
    plots: list[Plot] = []
    missing: list[str] = []
    if isinstance(folder, RunFolder):
        plots, missing = run_plots(folder)
        (path / PLOTS).mkdir(exist_ok=True)
        for plot in plots:
            _replace(path / PLOTS / plot.name, plot.png)
    target = path / REPORT
    _replace(target, render(folder, plots, missing).encode("utf-8"))
    return target


def _replace(target: Path, data: bytes) -> None:
    """Write next to the target, then rename: a reader never sees half a file."""
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, target)
