"""Plots and the self-contained HTML report of a run, sweep or capacity folder.

`write_series(day, folder)` keeps the series the plots need inside a run's folder;
`write_report(folder)` draws the plots and writes folder/report.html from the folder alone.
"""

from cardsim.report.html import write_report
from cardsim.report.series import write_series

__all__ = ["write_report", "write_series"]
