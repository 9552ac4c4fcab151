"""The ``workbench`` kernelspec installs where asked and boots a kernel with ``wb`` ready."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel

from tests.fixtures.services import ROOT, child_env, make_settings
from workbench.kernel import install
from workbench.kernel.install import KERNEL_NAME, install_kernelspec


@pytest.fixture
def jupyter_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    prefix = tmp_path / "prefix"
    installed = Path(install_kernelspec(prefix=str(prefix)))
    assert installed == prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    return prefix


def test_installed_spec_runs_this_python_with_the_extension(jupyter_prefix: Path) -> None:
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert Path(spec.resource_dir).is_relative_to(jupyter_prefix)
    assert spec.argv[0] == sys.executable
    assert spec.argv[1:] == [
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
        "--ext=workbench.kernel",
    ]
    assert spec.display_name == "Workbench (Python 3)"
    assert spec.language == "python"
    assert spec.env == {"SPARK_CONNECT_MODE_ENABLED": "1"}


def test_checked_in_spec_and_wheel_fallback_agree() -> None:
    checked_in = json.loads((ROOT / "kernels" / KERNEL_NAME / "kernel.json").read_text())
    assert checked_in == install._FALLBACK_SPEC


def test_reinstall_replaces(tmp_path: Path) -> None:
    first = install_kernelspec(prefix=str(tmp_path))
    assert install_kernelspec(prefix=str(tmp_path)) == first


def _run(client: Any, code: str) -> str:
    chunks: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "stream":
            chunks.append(content["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            chunks.append(content["data"].get("text/plain", ""))
        elif msg["msg_type"] == "error":
            chunks.append("\n".join(content["traceback"]))

    reply = client.execute_interactive(code, output_hook=hook, timeout=60)
    assert reply["content"]["status"] == "ok", "".join(chunks)
    return "".join(chunks)


def test_kernel_boots_with_wb_and_magics(
    jupyter_prefix: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)  # no engine listens on its Connect port
    for key, value in child_env(settings).items():
        if key.startswith("WORKBENCH__"):
            monkeypatch.setenv(key, value)
    manager, client = start_new_kernel(kernel_name=KERNEL_NAME, startup_timeout=60)
    try:
        assert _run(client, "type(wb).__name__") == "'Workbench'"
        assert _run(client, "wb.settings.engine.connect_url") == repr(settings.engine.connect_url)
        status = _run(client, "%wb status")
        assert "engine_reachable  False" in status
        assert "not signed in" in status and "is not answering" in status
        assert "is not answering" in _run(client, "%wb tables")
        assert _run(client, "import os; os.environ['SPARK_CONNECT_MODE_ENABLED']") == "'1'"
        # A thin client only: nothing in the kernel has started a JVM.
        code = "from pyspark import SparkContext; SparkContext._gateway is None"
        assert _run(client, code) == "True"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
