"""Figure plumbing shared by the plots: one style, PNG bytes without dates, time-of-day axes.

Figures are built with `matplotlib.figure.Figure` and rendered by the Agg canvas directly:
no pyplot, so no global figure registry, no interactive backend and nothing to close.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MultipleLocator

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

STYLE: dict[RcKeyType, Any] = {
    # The font matplotlib ships, so a plot looks (and hashes) the same whatever is installed.
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "svg.hashsalt": "cardsim",
}
DOMAIN_COLOURS = {
    "bus": "#1f77b4",
    "bike": "#2ca02c",
    "hospital": "#d62728",
    "pos": "#ff7f0e",
    "topup": "#9467bd",
}
"""One colour per domain, the same in every plot."""
WIDE = (9.9, 4.6)
TALL = (9.9, 6.0)


MARGINS = {"left": 0.08, "right": 0.96, "bottom": 0.12, "top": 0.92}
"""Fixed margins (figure fractions): a layout engine would cost one more draw per plot."""


@contextmanager
def figure(
    size: tuple[float, float] = WIDE,
    rows: int = 1,
    cols: int = 1,
    margins: dict[str, float] | None = None,
    **kw: Any,
) -> Iterator[tuple[Figure, Any]]:
    """A figure in the report's style with its axes (one Axes, or an array of them)."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=size)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(**(MARGINS | (margins or {})))
        axes = fig.subplots(rows, cols, squeeze=True, **kw)
        yield fig, axes


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes with no software or date stamp, so equal data give equal bytes."""
    buffer = io.BytesIO()
    with mpl.rc_context(STYLE):
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def time_of_day_axis(ax: Axes, end_h: float = 24.0) -> None:
    """x axis in hours after midnight, labelled 00:00, 03:00, ... (past 24 h: the next day)."""
    ax.set_xlim(0.0, end_h)
    step = 3 if end_h <= 30 else 6
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda hours, _pos: clock(hours)))


def clock(hours: float) -> str:
    """Hours after midnight as a clock reading: 6 -> '06:00', 24 -> '24:00', 26 -> '02:00 +1d'."""
    day, hour = divmod(round(hours), 24)
    if (day, hour) == (1, 0):
        return "24:00"
    return f"{hour:02d}:00" + (f" +{day}d" if day else "")


def thousands(ax: Axes, axis: str = "y") -> None:
    """Tick labels with thousands separators on one axis."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))


def no_data(ax: Axes, text: str) -> None:
    """Say in the plot itself why it is empty, instead of leaving a blank frame."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def end_hour(times_s: np.ndarray, active: np.ndarray) -> float:
    """The x range in hours: the whole day, or longer when something happens after midnight."""
    last = float(times_s[active].max()) if active.any() else 0.0
    return max(24.0, float(np.ceil(last / 3600.0 + 0.5)))
