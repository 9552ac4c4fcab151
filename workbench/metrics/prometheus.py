"""Prometheus helpers shared by the services: one registry per process, a ``pod`` label."""

from __future__ import annotations

import os
import socket

from prometheus_client import CollectorRegistry


def pod_name() -> str:
    """The ``pod`` label value: ``WORKBENCH_POD`` if set, else ``<host>:<pid>``."""
    return os.environ.get("WORKBENCH_POD") or f"{socket.gethostname()}:{os.getpid()}"


def new_registry() -> CollectorRegistry:
    """A fresh registry (never the global default, so tests and processes stay isolated)."""
    return CollectorRegistry(auto_describe=True)
