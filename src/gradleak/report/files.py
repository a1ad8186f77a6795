"""Saving pictures and figures: rendered in memory, written by the one artefact writer.

Every PNG, GIF and HTML file of a report goes through
:func:`gradleak.persistence.write_artifact`, so how files are written is decided in one
place.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from gradleak.persistence.files import write_artifact


def save_image(path: str | Path, picture: Image.Image, **save_kwargs: Any) -> Path:
    """Writes a Pillow picture (PNG unless ``format=`` says otherwise) to ``path``."""
    buf = io.BytesIO()
    save_kwargs.setdefault("format", "PNG")
    picture.save(buf, **save_kwargs)
    return write_artifact(path, buf.getvalue())


def save_figure(path: str | Path, fig: Any, **savefig_kwargs: Any) -> Path:
    """Writes a matplotlib figure (PNG unless ``format=`` says otherwise) to ``path``."""
    buf = io.BytesIO()
    savefig_kwargs.setdefault("format", "png")
    fig.savefig(buf, **savefig_kwargs)
    return write_artifact(path, buf.getvalue())
