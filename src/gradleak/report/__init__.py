"""Reports: PNG grids, progress GIFs, loss plots, JSON and a static ``index.html`` per run.

Example:
    >>> import gradleak as gl
    >>> gl.report.write_run("runs/x", rec, truth, scores, title="IG on LeNet")  # doctest: +SKIP
"""

from gradleak.report.gifs import GifPanel, save_progress_gif, save_side_by_side_gif, write_gif
from gradleak.report.grids import match_order, save_grid
from gradleak.report.html import Section, render_page, write_page
from gradleak.report.plots import save_curves, save_loss_plot
from gradleak.report.run import RunData, load_run, rerender, to_jsonable, write_run

__all__ = [
    "GifPanel",
    "RunData",
    "Section",
    "load_run",
    "match_order",
    "render_page",
    "rerender",
    "save_curves",
    "save_grid",
    "save_loss_plot",
    "save_progress_gif",
    "save_side_by_side_gif",
    "to_jsonable",
    "write_gif",
    "write_page",
    "write_run",
]
