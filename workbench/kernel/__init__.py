"""The IPython extension loaded by the ``workbench`` kernel."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Load settings once, push the ``wb`` handle and register the magics.

    Runs when the kernel starts (``--ext=workbench.kernel``) or on ``%load_ext workbench.kernel``.
    Nothing connects here: the engine session opens on first use of ``wb``.
    """
    import plotly.io as pio

    from workbench.core.settings import load_settings
    from workbench.kernel.handle import Workbench
    from workbench.kernel.magics import WorkbenchMagics

    handle = Workbench(load_settings())
    ipython.push({"wb": handle})
    ipython.register_magics(WorkbenchMagics(ipython, handle))
    # JupyterLab and Voila render plotly's own MIME type; the default also inlines plotly.js
    # (~4 MB) into every notebook that shows a figure.
    pio.renderers.default = "plotly_mimetype"
    # pyspark logs every failed query with its JVM stack trace at ERROR; the workbench raises
    # a ComputationError carrying the message instead.
    # Created through PySparkLogger: it logs with extra keywords a plain Logger rejects.
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


def unload_ipython_extension(ipython: Any) -> None:
    """Close the handle's connections (``%unload_ext workbench.kernel``)."""
    handle = ipython.user_ns.pop("wb", None)
    if handle is not None:
        handle.close()
