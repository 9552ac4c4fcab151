"""``%wb`` and ``%%sql``: the workbench magics, bound to one :class:`Workbench` handle."""

from __future__ import annotations

import shlex
from html import escape
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from workbench.client.engine_client import DEFAULT_LIMIT
from workbench.client.results import QueryAnswer
from workbench.core.errors import WorkbenchError
from workbench.kernel.handle import Workbench

__all__ = ["WorkbenchMagics"]

_WB_USAGE = (
    "usage: %wb status | %wb tables | %wb computations | %wb run <name> [--limit N]"
    " | %wb tile <name>"
)


@magics_class
class WorkbenchMagics(Magics):
    """The workbench magics.

    Args:
        shell: the IPython shell.
        handle: the kernel's ``wb`` handle.
    """

    def __init__(self, shell: Any, handle: Workbench) -> None:
        super().__init__(shell)
        self.handle = handle

    @line_magic
    def wb(self, line: str) -> Any:
        """``%wb status|tables|computations``, ``%wb run NAME [--limit N]``, ``%wb tile NAME``."""
        words = shlex.split(line)
        command, args = (words[0], words[1:]) if words else ("status", [])
        try:
            if command == "status":
                print(_format_status(self.handle.status()))
                return None
            if command == "tables":
                return self.handle.tables()
            if command == "computations":
                return [c.name for c in self.handle.computations()]
            if command in ("run", "tile") and args:
                name, limit = _name_and_limit(args)
                if command == "run":
                    return self.handle.run(name, limit=limit)
                return self.handle.tile(name, limit=limit)
        except WorkbenchError as err:
            # A one-line message beats a traceback through the handle for user mistakes.
            print(f"error: {err.message}")
            return None
        print(_WB_USAGE)
        return None

    @cell_magic
    def sql(self, line: str, cell: str) -> Any:
        """Run the cell as one Spark SQL query on the engine's query service and show the
        result with its sensitivity label beside it.

        Options on the magic line: ``--limit N`` (default 1000), ``-o NAME`` to also store the
        result frame in the variable ``NAME``, ``-p NAME=VALUE`` (repeatable) for ``:NAME``
        parameters. A refused query prints why (with line and column) instead of a traceback.
        """
        words = shlex.split(line)
        limit, target, params = DEFAULT_LIMIT, None, {}
        while words:
            option = words.pop(0)
            if option == "--limit" and words:
                limit = _int(words.pop(0), "--limit")
            elif option in ("-o", "--out") and words:
                target = words.pop(0)
            elif option in ("-p", "--param") and words and "=" in words[0]:
                key, _, value = words.pop(0).partition("=")
                params[key] = value
            else:
                raise WorkbenchError(
                    f"%%sql: unknown option {option!r}; use --limit N, -o NAME, -p NAME=VALUE",
                    option=option,
                )
        try:
            answer = self.handle.query(cell, limit=limit, params=params)
        except WorkbenchError as err:
            print(f"refused: {err.message}")
            return None
        frame = answer.to_pandas()
        if target:
            self.shell.user_ns[target] = frame
        from IPython.display import HTML, display

        display(HTML(sensitivity_badge(answer)))
        return frame


def _name_and_limit(args: list[str]) -> tuple[str, int]:
    name, rest = args[0], args[1:]
    if len(rest) == 2 and rest[0] == "--limit":
        return name, _int(rest[1], "--limit")
    if rest:
        raise WorkbenchError(f"unexpected arguments {' '.join(rest)!r}; {_WB_USAGE}")
    return name, DEFAULT_LIMIT


def _int(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError as err:
        raise WorkbenchError(f"{option} takes a whole number, got {text!r}") from err


def _format_status(status: dict[str, Any]) -> str:
    width = max(len(key) for key in status)
    lines = []
    for key, value in status.items():
        if isinstance(value, list):
            value = ", ".join(value) or "(none)"
        lines.append(f"{key.ljust(width)}  {value}")
    return "\n".join(lines)


#: Badge colours per label, from open to closed.
_LABEL_COLOURS = {
    "public": "#2e7d32",
    "internal": "#1565c0",
    "confidential": "#ef6c00",
    "restricted": "#b71c1c",
}


def sensitivity_badge(answer: QueryAnswer) -> str:
    """A one-line HTML badge: the result's label, row count, truncation and tables read."""
    colour = _LABEL_COLOURS.get(answer.sensitivity, "#616161")
    more = f" (first {answer.limit}; raise --limit for more)" if answer.truncated else ""
    tables = escape(", ".join(answer.tables) or "no table")
    return (
        f"<span class='workbench-sensitivity' style='background:{colour};color:white;"
        f"padding:1px 8px;border-radius:10px'>{escape(answer.sensitivity)}</span> "
        f"<small>{len(answer.rows)} rows{more} from {tables} in {answer.seconds:.2f} s</small>"
    )
