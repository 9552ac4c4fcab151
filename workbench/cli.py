"""The ``workbench`` command: parse, build settings once, call one function, map errors.

Every subcommand's work lives in the package; this module only wires arguments to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from workbench.core.errors import ConfigError, ServiceUnavailableError, WorkbenchError
from workbench.core.logs import configure_logging
from workbench.core.settings import Settings, load_settings

log = logging.getLogger("workbench")


def _up(settings: Settings, _args: argparse.Namespace) -> int:
    from workbench.stack.up import run_stack

    return run_stack(settings)


def _ingest(settings: Settings, _args: argparse.Namespace) -> int:
    from workbench.api.ingest_app import run_ingest

    run_ingest(settings)
    return 0


def _engine(settings: Settings, _args: argparse.Namespace) -> int:
    from workbench.api.engine_app import run_engine

    run_engine(settings)
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.simulators.runner import run_simulator

    run_simulator(settings, kind=args.kind, count=args.count)
    return 0


def _kernel_install(_settings: Settings, args: argparse.Namespace) -> int:
    from workbench.kernel.install import install_kernelspec

    where = install_kernelspec(user=args.user, prefix=args.prefix)
    print(f"installed kernelspec 'workbench' in {where}")
    return 0


def _settings_show(settings: Settings, _args: argparse.Namespace) -> int:
    print(json.dumps(settings.model_dump(mode="json"), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="workbench", description="IoT sensor analytics workbench."
    )
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING (default: settings)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, handler: Callable[[Settings, argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    add("up", _up, "start the demo stack: broker, ingest, engine, simulator, Voila")
    add("ingest", _ingest, "run the ingest service (no JVM)")
    add("engine", _engine, "run the engine service (Spark driver, streams, Spark Connect)")
    sim = add("simulate", _simulate, "publish simulated sensor readings to the broker")
    sim.add_argument("--kind", default="temperature", help="sensor kind (default: temperature)")
    sim.add_argument("--count", type=int, default=None, help="stop after N messages per sensor")
    kernel = sub.add_parser("kernel", help="Jupyter kernelspec").add_subparsers(
        dest="kernel_command", required=True
    )
    install = kernel.add_parser("install", help="install the 'workbench' kernelspec")
    install.add_argument("--user", action="store_true", help="into the user's Jupyter dir")
    install.add_argument("--prefix", default=None, help="into PREFIX/share/jupyter/kernels")
    install.set_defaults(handler=_kernel_install)
    add("settings", _settings_show, "print the effective settings as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(args.log_level or settings.log_level)
        return int(args.handler(settings, args))
    except KeyboardInterrupt:
        return 130
    except ConfigError as err:
        print(f"workbench: configuration error: {err.message}", file=sys.stderr)
        return 2
    except ServiceUnavailableError as err:
        print(f"workbench: {err.message}", file=sys.stderr)
        return 3
    except WorkbenchError as err:
        print(f"workbench: {err.message}", file=sys.stderr)
        return 1
