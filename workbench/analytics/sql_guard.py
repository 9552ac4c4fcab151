"""The guard every user-written Spark SQL passes: exactly one ``SELECT`` or ``WITH`` query.

Shared by saved computations (:mod:`workbench.analytics.computations`) and the user-defined
streaming computations of gold (:mod:`workbench.gold.stream_computation`), which sit on different
layers. It needs no Spark: the text is checked before any session sees it.
"""

from __future__ import annotations

import re

from workbench.core.errors import ComputationError

__all__ = ["ALLOWED_FIRST_WORDS", "check_query"]

ALLOWED_FIRST_WORDS = ("SELECT", "WITH")
# Single-quoted strings, double-quoted strings, backquoted identifiers, line and block comments:
# everything in which a ';' or a keyword does not count.
_NOT_CODE = re.compile(
    r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`]|``)*`|--[^\n]*|/\*.*?\*/",
    re.DOTALL,
)
_FIRST_WORD = re.compile(r"[A-Za-z_]+")


def check_query(sql: str, *, name: str, what: str = "computation") -> str:
    """Check that ``sql`` is exactly one ``SELECT``/``WITH`` query.

    Args:
        sql: the user's SQL text.
        name: the name of what holds it, for the message and the error's ``computation`` field.
        what: what holds it, as the message calls it (``computation``, ``stream computation``).

    Returns:
        The query without trailing semicolons and whitespace, ready for ``spark.sql``.

    Raises:
        ComputationError: the query is empty, holds several statements, or is not a query.
    """
    sql = sql.strip().rstrip(";").strip()
    # Blank out strings and comments (keeping offsets) so they cannot hide or fake a statement.
    code = _NOT_CODE.sub(lambda m: " " * len(m.group(0)), sql)
    if not code.strip():
        raise ComputationError(
            f"{what} {name!r} has no SQL: write one SELECT or WITH query", computation=name
        )
    if ";" in code:
        offset = code.index(";")
        line = sql.count("\n", 0, offset) + 1
        raise ComputationError(
            f"{what} {name!r} holds more than one statement (';' at line {line},"
            f" offset {offset}): a {what} is exactly one SELECT or WITH query",
            computation=name,
            offset=offset,
            line=line,
        )
    first = _FIRST_WORD.search(code.lstrip(" \n\t("))
    word = first.group(0).upper() if first else code.strip()[:20]
    if word not in ALLOWED_FIRST_WORDS:
        raise ComputationError(
            f"{what} {name!r} starts with {word!r}: only read-only queries "
            f"starting with {' or '.join(ALLOWED_FIRST_WORDS)} are allowed",
            computation=name,
            keyword=word,
        )
    return sql
