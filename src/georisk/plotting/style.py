"""House style of georisk figures: palette, fonts, header and source line, saving.

Every plotting function of :mod:`georisk.plotting` draws inside :func:`house_style`, a
:func:`matplotlib.rc_context`: the style never leaks into the caller's global ``rcParams``,
and a figure made in a notebook looks exactly like one made by ``georisk figures``.

Conventions
-----------
* Width :data:`COLUMN_WIDTH_IN` (6.5 inches, a memo's text column); every font at least
  :data:`MIN_FONT_PT` points at that print size.
* Colours from the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), which
  stays distinguishable under the common colour-vision deficiencies: :data:`OKABE_ITO`,
  with the roles georisk gives them in :data:`COLORS`.
* A bold title, a subtitle that carries the as-of date (and an UNCONVERGED warning line when
  the fit failed its checks), and a small grey source line naming the run or fit id and the
  data date (:func:`add_header`, :func:`source_line`).
* No top or right spines; a light grid only along the axis that is read.
* :func:`save_figure` writes PNG at 300 dpi and SVG, each atomically, without timestamps, so
  that the same figure gives the same bytes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.gridspec import GridSpec
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import Bbox

from georisk.atomic import write_atomic

__all__ = [
    "COLUMN_WIDTH_IN",
    "DPI",
    "MIN_FONT_PT",
    "OKABE_ITO",
    "COLORS",
    "HOUSE_RC",
    "house_style",
    "new_figure",
    "Frame",
    "start_figure",
    "draw_source",
    "tidy_axes",
    "add_header",
    "header_lines",
    "header_height_in",
    "draw_header_block",
    "source_line",
    "format_date",
    "format_percent",
    "percent_formatter",
    "wrap",
    "short_event_label",
    "freeze_layout",
    "save_figure",
]

COLUMN_WIDTH_IN = 6.5
"""Width of every georisk figure, in inches (a memo's text column)."""

DPI = 300
"""Resolution of saved PNG files."""

MIN_FONT_PT = 8.0
"""Smallest font size used, in points at print size."""

OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
"""The Okabe-Ito colour-blind-safe palette."""

COLORS: dict[str, str] = {
    "estimate": OKABE_ITO["blue"],
    "interval": OKABE_ITO["sky_blue"],
    "base_rate": "#333333",
    "supports": OKABE_ITO["bluish_green"],
    "opposes": OKABE_ITO["vermillion"],
    "timing": OKABE_ITO["reddish_purple"],
    "prior": "#9A9A9A",
    "posterior": OKABE_ITO["blue"],
    "warning": OKABE_ITO["vermillion"],
    "band": "#EDEFF2",
    "muted": "#5A5A5A",
    "grid": "#DDDDDD",
    "text": "#1A1A1A",
}
"""Role -> colour used by every figure (from :data:`OKABE_ITO` plus neutral greys)."""

TITLE_PT = 11.0
SUBTITLE_PT = 9.0
SOURCE_PT = MIN_FONT_PT

HOUSE_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 9.0,
    "axes.labelcolor": COLORS["text"],
    "axes.edgecolor": "#444444",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.axisbelow": True,
    "axes.prop_cycle": mpl.cycler(
        color=[OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "vermillion",
                                      "reddish_purple", "sky_blue", "yellow", "black")]
    ),  # fmt: skip
    "grid.color": COLORS["grid"],
    "grid.linewidth": 0.6,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "xtick.labelcolor": COLORS["text"],
    "ytick.labelcolor": COLORS["text"],
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "savefig.facecolor": "white",
    "svg.fonttype": "path",
    "svg.hashsalt": "georisk",
    "path.simplify": True,
}
"""The ``rcParams`` applied by :func:`house_style` (only inside the context)."""


@contextlib.contextmanager
def house_style() -> Iterator[None]:
    """Apply the house ``rcParams`` for the duration of a ``with`` block.

    Uses :func:`matplotlib.rc_context`, so the caller's settings are restored afterwards.

    Yields
    ------
    None
    """
    with mpl.rc_context(HOUSE_RC):
        yield


def new_figure(height_in: float) -> Figure:
    """Return a new house-style figure, 6.5 inches wide, with constrained layout.

    The figure is a plain :class:`matplotlib.figure.Figure`, not registered with pyplot:
    nothing global is created and nothing needs closing. Call inside :func:`house_style`.

    Parameters
    ----------
    height_in : float
        Height in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not height_in > 0:
        raise ValueError(f"a figure height must be positive. Got {height_in}.")
    fig = Figure(figsize=(COLUMN_WIDTH_IN, height_in), layout="constrained")
    fig.get_layout_engine().set(w_pad=4 / 72, h_pad=4 / 72, hspace=0.02, wspace=0.02)
    return fig


@dataclass
class Frame:
    """A figure being drawn: the axes to draw on and how to add the header when done.

    Made by :func:`start_figure`. On a figure made for the plot (``owned``), the axes lives
    in a body subfigure between a header subfigure (title block) and a footer subfigure
    (source line), so long texts never squeeze the panels; on an ``ax=`` passed in, the
    texts are annotations around that axes (:func:`add_header`).
    """

    fig: Figure
    ax: Axes
    owned: bool
    body: Figure | SubFigure
    header: SubFigure | None = None
    footer: SubFigure | None = None
    grid: GridSpec | None = None
    body_height_in: float = 0.0

    def finish(
        self,
        *,
        title: str,
        subtitle: str | None = None,
        source: str | None = None,
        warning: str | None = None,
    ) -> Figure:
        """Add title, warning, subtitle and source line; size the figure; return it."""
        if self.header is None or self.footer is None or self.grid is None:
            add_header(self.ax, title=title, subtitle=subtitle, source=source, warning=warning)
            return self.fig
        head = header_height_in(title=title, subtitle=subtitle, warning=warning)
        foot = FOOTER_IN if source else 0.05
        self.grid.set_height_ratios([head, self.body_height_in, foot])
        self.fig.set_size_inches(COLUMN_WIDTH_IN, head + self.body_height_in + foot)
        draw_header_block(self.header, title=title, subtitle=subtitle, warning=warning)
        if source:
            draw_source(self.footer, source)
        return self.fig


FOOTER_IN = 0.30
"""Height of the footer that holds the source line, in inches."""


def start_figure(ax: Axes | None, body_height_in: float, *, ncols: int = 1,
                 width_ratios: Sequence[float] | None = None) -> Frame:
    """Start a plot: a new house figure (header, body, footer) or the given axes.

    Call inside :func:`house_style`, draw on ``frame.ax``, then ``frame.finish(...)``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes or None
        Axes to draw on, or None for a new figure of :data:`COLUMN_WIDTH_IN` width.
    body_height_in : float
        Height of the plotting area (without header and footer), in inches.
    ncols : int, default 1
        Panels side by side in the body of a new figure (``frame.ax`` is the first; the
        others are in ``frame.body.axes``).
    width_ratios : sequence of float, optional
        Relative widths of those panels.

    Returns
    -------
    Frame
    """
    if ax is not None:
        if not isinstance(ax, Axes):
            raise TypeError(f"ax must be a matplotlib Axes or None. Got {type(ax).__name__}.")
        fig = ax.get_figure(root=True)
        assert isinstance(fig, Figure)
        return Frame(fig=fig, ax=ax, owned=False, body=ax.get_figure(root=False))
    if not body_height_in > 0:
        raise ValueError(f"a figure height must be positive. Got {body_height_in}.")
    fig = new_figure(body_height_in + 1.0)
    grid = fig.add_gridspec(3, 1, height_ratios=[0.7, body_height_in, FOOTER_IN],
                            hspace=0.0)  # fmt: skip
    header, body, footer = (fig.add_subfigure(grid[i]) for i in range(3))
    axes = body.subplots(1, ncols, squeeze=False, width_ratios=width_ratios)
    return Frame(
        fig=fig, ax=axes[0, 0], owned=True, body=body, header=header, footer=footer,
        grid=grid, body_height_in=body_height_in,
    )  # fmt: skip


def draw_source(fig: Figure | SubFigure, source: str) -> Any:
    """Write the source line at the left of a (footer) subfigure; gid ``source``."""
    from matplotlib.transforms import ScaledTranslation

    root = fig.get_figure(root=True)
    art = fig.text(
        0, 0.5, wrap(source, 120),
        transform=fig.transSubfigure + ScaledTranslation(6 / 72, 0, root.dpi_scale_trans),
        ha="left", va="center", fontsize=SOURCE_PT, color=COLORS["muted"],
    )  # fmt: skip
    art.set_gid("source")
    return art


def tidy_axes(ax: Axes, *, grid: str | None = None, left_spine: bool = True) -> None:
    """Remove chart junk from an axes: top/right spines off, optional light grid.

    Needed when the axes was made outside :func:`house_style` (an ``ax=`` passed in).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes.
    grid : {"x", "y", "both"} or None
        Axis along which to draw a light grid.
    left_spine : bool, default True
        Keep the left spine (off for dot plots whose rows are categories).
    """
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.spines["left"].set_visible(left_spine)
    if grid is not None:
        if grid not in {"x", "y", "both"}:
            raise ValueError(f"grid must be 'x', 'y', 'both' or None. Got {grid!r}.")
        ax.grid(True, axis=grid, color=COLORS["grid"], linewidth=0.6)
        ax.set_axisbelow(True)


def _decorations(ax: Axes) -> Callable[[Any], Bbox]:
    """Callable giving the window bbox of an axes with its tick labels and child axes."""

    def bbox(renderer: Any) -> Bbox:
        boxes = [ax.get_window_extent(renderer)]
        for part in (ax.xaxis, ax.yaxis, *ax.child_axes):
            box = part.get_tightbbox(renderer)
            if box is not None and box.width > 0 and box.height > 0:
                boxes.append(box)
        return Bbox.union(boxes)

    return bbox


def add_header(
    ax: Axes,
    *,
    title: str,
    subtitle: str | None = None,
    source: str | None = None,
    warning: str | None = None,
    title_width: int = 70,
    subtitle_width: int = 95,
) -> dict[str, Any]:
    """Put the title, subtitle, warning line and source line around an axes.

    Used for an ``ax=`` passed in by the caller (a figure made by georisk puts these texts
    in header and footer subfigures instead, see :class:`Frame`). The texts are
    annotations anchored to the axes' decorations (tick labels, axis labels and secondary
    axes), so constrained layout makes room for them. Top to bottom: bold title, warning
    (bold, vermillion), subtitle; the source line sits under the x-axis label. Each text has a
    ``gid`` (``"title"``, ``"warning"``, ``"subtitle"``, ``"source"``) for tests.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to annotate.
    title : str
        Bold title (wrapped at ``title_width`` characters).
    subtitle : str, optional
        Subtitle, typically with the as-of date (wrapped at ``subtitle_width``).
    source : str, optional
        Source line (see :func:`source_line`).
    warning : str, optional
        Warning shown between title and subtitle, e.g. an unconverged fit.
    title_width, subtitle_width : int
        Wrapping widths in characters.

    Returns
    -------
    dict
        The annotation artists by gid.
    """
    anchor = _decorations(ax)
    common = {
        "textcoords": "offset points",
        "ha": "left",
        "va": "bottom",
        "annotation_clip": False,
        "color": COLORS["text"],
    }
    out: dict[str, Any] = {}
    below: Any = anchor
    gap = 6.0
    for gid, text, size, extra, width in (
        ("subtitle", subtitle, SUBTITLE_PT, {}, subtitle_width),
        ("warning", warning, SUBTITLE_PT, {"fontweight": "bold", "color": COLORS["warning"]},
         subtitle_width),
        ("title", title, TITLE_PT, {"fontweight": "bold"}, title_width),
    ):  # fmt: skip
        if not text:
            continue
        kwargs = {**common, **extra}
        art = ax.annotate(
            wrap(text, width),
            xy=(0, 1),
            xycoords=below,
            xytext=(0, gap),
            fontsize=size,
            linespacing=1.25,
            **kwargs,
        )
        art.set_gid(gid)
        out[gid] = art
        below, gap = art, 3.0
    if source:
        art = ax.annotate(
            wrap(source, 120),
            xy=(0, 0),
            xycoords=anchor,
            xytext=(0, -6),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=SOURCE_PT,
            color=COLORS["muted"],
            annotation_clip=False,
        )
        art.set_gid("source")
        out["source"] = art
    return out


def header_lines(
    *, title: str, subtitle: str | None = None, warning: str | None = None
) -> list[tuple[str, str, float, dict[str, Any]]]:
    """Return the wrapped header lines ``(gid, text, size, kwargs)``, top to bottom."""
    lines: list[tuple[str, str, float, dict[str, Any]]] = [
        ("title", wrap(title, 70), TITLE_PT, {"fontweight": "bold", "color": COLORS["text"]})
    ]
    if warning:
        lines.append(
            ("warning", wrap(warning, 95), SUBTITLE_PT,
             {"fontweight": "bold", "color": COLORS["warning"]})
        )  # fmt: skip
    if subtitle:
        lines.append(("subtitle", wrap(subtitle, 95), SUBTITLE_PT, {"color": COLORS["text"]}))
    return lines


def header_height_in(
    *, title: str, subtitle: str | None = None, warning: str | None = None
) -> float:
    """Height in inches that :func:`draw_header_block` needs for these texts."""
    points = 6.0
    for _, text, size, _ in header_lines(title=title, subtitle=subtitle, warning=warning):
        points += (text.count("\n") + 1) * size * 1.3 + 3.0
    return points / 72.0


def draw_header_block(
    fig: Figure | SubFigure,
    *,
    title: str,
    subtitle: str | None = None,
    warning: str | None = None,
) -> dict[str, Any]:
    """Draw the title block at the top left of a (sub)figure, for multi-panel figures.

    Give the (sub)figure :func:`header_height_in` inches; the lines are stacked from its
    top edge in points, with the same sizes and colours as :func:`add_header`.

    Parameters
    ----------
    fig : Figure or SubFigure
        Usually a header subfigure of the full width.
    title, subtitle, warning : str
        As in :func:`add_header`.

    Returns
    -------
    dict
        The text artists by gid.
    """
    from matplotlib.transforms import ScaledTranslation

    root = fig.get_figure(root=True)
    out: dict[str, Any] = {}
    down = 3.0
    for gid, text, size, kwargs in header_lines(title=title, subtitle=subtitle, warning=warning):
        shift = ScaledTranslation(6 / 72, -down / 72, root.dpi_scale_trans)
        art = fig.text(0, 1, text, transform=fig.transSubfigure + shift, fontsize=size,
                       ha="left", va="top", linespacing=1.3, **kwargs)  # fmt: skip
        art.set_gid(gid)
        out[gid] = art
        down += (text.count("\n") + 1) * size * 1.3 + 3.0
    return out


def source_line(
    *,
    fit_id: str | Iterable[str] | None = None,
    run_id: str | int | Iterable[str | int] | None = None,
    as_of: dt.date | str | None = None,
    data_date: dt.date | str | None = None,
    note: str | None = None,
) -> str:
    """Compose the small source line printed under every figure.

    Parameters
    ----------
    fit_id : str or iterable of str, optional
        Posterior fit id(s); shown shortened to 12 characters.
    run_id : str, int or iterable of them, optional
        History run id(s).
    as_of : date or str, optional
        Assessment date.
    data_date : date or str, optional
        Date of the newest ledger entry used (defaults to nothing).
    note : str, optional
        Extra text appended at the end.

    Returns
    -------
    str
        E.g. ``"Source: georisk · run 2026-11-25T06:00 · fit 9b6c08bba8e1 · as of
        2026-11-25 · ledger to 2025-11-20"``.
    """

    def ids(value: Any, n: int) -> str | None:
        if value is None:
            return None
        single = isinstance(value, str) or not isinstance(value, Iterable)
        items = [str(value)] if single else [str(v) for v in value]
        items = list(dict.fromkeys(v for v in items if v and v != "nan"))
        if not items:
            return None
        short = [v[:n] for v in items]
        return ", ".join(short) if len(short) <= 3 else f"{short[0]} ... {short[-1]}"

    parts = ["Source: georisk"]
    run = ids(run_id, 24)
    if run:
        parts.append(f"run {run}")
    fit = ids(fit_id, 12)
    if fit:
        parts.append(f"fit {fit}")
    if as_of is not None:
        parts.append(f"as of {format_date(as_of)}")
    if data_date is not None:
        parts.append(f"ledger to {format_date(data_date)}")
    if note:
        parts.append(note)
    return " · ".join(parts)


def format_date(value: dt.date | dt.datetime | str | Any) -> str:
    """ISO date (``YYYY-MM-DD``) of a date, datetime, pandas Timestamp or ISO string."""
    if isinstance(value, str):
        return value[:10]
    if hasattr(value, "date") and callable(value.date):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot format {value!r} as a date.")


def format_percent(p: float, *, digits: int | None = None) -> str:
    """Probability as a percentage: one decimal below 10% or above 90%, none otherwise.

    Parameters
    ----------
    p : float
        Probability in [0, 1].
    digits : int, optional
        Force this many decimals.

    Returns
    -------
    str
        E.g. ``"4.3%"``, ``"42%"``.
    """
    if digits is None:
        digits = 1 if (p < 0.10 or p > 0.90) else 0
    return f"{100 * p:.{digits}f}%"


percent_formatter = FuncFormatter(lambda x, _pos: f"{100 * x:.0f}%")
"""Tick formatter for probabilities shown as whole percentages."""


def wrap(text: str, width: int) -> str:
    """Wrap text at ``width`` characters, keeping existing line breaks."""
    return "\n".join(
        textwrap.fill(line, width=width, break_long_words=True, break_on_hyphens=False)
        if line
        else ""
        for line in str(text).splitlines() or [""]
    )


def short_event_label(event_id: str, *, max_chars: int = 28) -> str:
    """Short label of an event id: drop an ``evt-``/``ev-`` prefix and a trailing date.

    Parameters
    ----------
    event_id : str
        E.g. ``"evt-uz-kz-portfolio-2025-11-15"``.
    max_chars : int, default 28
        Longer labels are cut with an ellipsis.

    Returns
    -------
    str
        E.g. ``"uz-kz-portfolio"``.
    """
    import re

    label = re.sub(r"^(evt|ev)-", "", str(event_id))
    label = re.sub(r"-\d{4}(-\d{2}){0,2}$", "", label) or str(event_id)
    return label if len(label) <= max_chars else label[: max_chars - 1] + "…"


def freeze_layout(fig: Figure) -> None:
    """Run the figure's layout engine once, then switch it off.

    Constrained layout is not idempotent when annotations in offset points (value labels)
    sit near the axes edges: every draw starts from the previous positions and moves them
    a little. Freezing after one pass makes every later draw identical. A figure whose
    engine cannot be switched off (colorbars made by another engine) is left as it is.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure (modified in place).
    """
    if fig.get_layout_engine() is None:
        return
    with house_style():
        fig.draw_without_rendering()
    with contextlib.suppress(RuntimeError):
        fig.set_layout_engine("none")


def save_figure(
    fig: Figure,
    path: str | os.PathLike[str],
    *,
    formats: Sequence[str] = ("png", "svg"),
    dpi: int = DPI,
) -> list[Path]:
    """Save a figure as PNG (300 dpi) and SVG, each written atomically.

    Each file is written to a temporary name in the target folder and renamed into place,
    so a reader never sees half a file. No timestamps or software tags are embedded, and
    the layout is computed once and frozen first (:func:`freeze_layout`), so the PNG and
    the SVG show the same layout and saving again gives the same bytes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : path-like
        Target path *without* suffix (a suffix given is replaced), e.g. ``out/overview``.
    formats : sequence of str, default ("png", "svg")
        File formats to write.
    dpi : int, default 300
        Resolution of raster formats.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.
    """
    base = Path(path)
    if base.suffix.lower() in {".png", ".svg", ".pdf"}:
        base = base.with_suffix("")
    allowed = {"png", "svg", "pdf"}
    bad = [f for f in formats if f not in allowed]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty subset of {sorted(allowed)}. Got {formats}.")
    freeze_layout(fig)
    metadata = {
        "png": {"Software": None},
        "svg": {"Date": None, "Creator": None},
        "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
    }
    written = []
    with house_style():
        for fmt in formats:
            target = base.parent / f"{base.name}.{fmt}"
            write_atomic(
                target,
                lambda fh, fmt=fmt: fig.savefig(
                    fh, format=fmt, dpi=dpi, metadata=metadata[fmt], facecolor="white"
                ),
            )
            written.append(target)
    return written
