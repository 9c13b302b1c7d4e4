"""Memo-ready figures of georisk, one module per figure, all in one house style.

Every function takes its data first and everything else by keyword, accepts an optional
``ax=`` (``fig=`` for the multi-panel priors figure), returns the
:class:`matplotlib.figure.Figure` and never calls ``show()``. The style is applied through
:func:`matplotlib.rc_context` (:func:`~georisk.plotting.style.house_style`), so a figure
looks the same from a notebook and from ``georisk figures``, and the caller's
``rcParams`` are left alone.

=========================  =============================================================
function                   figure
=========================  =============================================================
:func:`plot_overview`      every open scenario: mean, 80% and 95% intervals, base rate
:func:`plot_trajectory`    one scenario over as-of dates, with the events that moved it
:func:`plot_drivers`       log-odds waterfall from the base rate to the forecast
:func:`plot_priors`        prior and posterior densities of the model's parameters
:func:`plot_calibration`   reliability diagram of forecasts against outcomes
=========================  =============================================================

:func:`save_figure` writes PNG (300 dpi) and SVG atomically.
"""

from georisk.plotting.calibration import plot_calibration, reliability_table
from georisk.plotting.drivers import plot_drivers
from georisk.plotting.overview import plot_overview
from georisk.plotting.priors import plot_priors
from georisk.plotting.style import COLORS, OKABE_ITO, house_style, save_figure, source_line
from georisk.plotting.trajectory import plot_trajectory

__all__ = [
    "plot_overview",
    "plot_trajectory",
    "plot_drivers",
    "plot_priors",
    "plot_calibration",
    "reliability_table",
    "save_figure",
    "source_line",
    "house_style",
    "COLORS",
    "OKABE_ITO",
]
