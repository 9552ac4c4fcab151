"""Install the ``workbench`` kernelspec so Jupyter, Voila and papermill can start the kernel."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager

__all__ = ["KERNEL_NAME", "install_kernelspec", "kernelspec"]

KERNEL_NAME = "workbench"

# The checked-in spec (kernels/workbench/kernel.json) is the source; this copy serves installs
# from a wheel, where the repository's kernels/ folder is absent. A unit test keeps them equal.
_FALLBACK_SPEC: dict[str, Any] = {
    "argv": [
        "python",
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
        "--ext=workbench.kernel",
    ],
    "display_name": "Workbench (Python 3)",
    "language": "python",
    # pyspark's thin-client switch: nothing in the kernel may start a JVM.
    "env": {"SPARK_CONNECT_MODE_ENABLED": "1"},
    "metadata": {"debugger": True},
}


def kernelspec() -> dict[str, Any]:
    """The kernelspec as installed: the checked-in one, with ``argv[0]`` set to this Python.

    Pointing ``argv[0]`` at :data:`sys.executable` makes the kernel run in the environment that
    has the workbench installed, whatever ``python`` is first on the ``PATH`` later.
    """
    source = Path(__file__).resolve().parents[2] / "kernels" / KERNEL_NAME / "kernel.json"
    spec = (
        json.loads(source.read_text())
        if source.is_file()
        else json.loads(json.dumps(_FALLBACK_SPEC))
    )
    spec["argv"][0] = sys.executable
    return spec


def install_kernelspec(*, user: bool = False, prefix: str | None = None) -> str:
    """Install (or replace) the ``workbench`` kernelspec.

    Args:
        user: install for the current user (``~/.local/share/jupyter/kernels``).
        prefix: install under ``<prefix>/share/jupyter/kernels`` (a venv: ``sys.prefix``).
            With neither, Jupyter's system-wide location is used.

    Returns:
        The directory the kernelspec was installed to.
    """
    with tempfile.TemporaryDirectory(prefix="workbench-kernelspec-") as tmp:
        folder = Path(tmp) / KERNEL_NAME
        folder.mkdir()
        (folder / "kernel.json").write_text(json.dumps(kernelspec(), indent=2) + "\n")
        return str(
            KernelSpecManager().install_kernel_spec(
                str(folder), kernel_name=KERNEL_NAME, user=user, prefix=prefix
            )
        )
