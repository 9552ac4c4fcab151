"""Every error has a stable code and class; whether to retry is the error's to say."""

from __future__ import annotations

import pytest

import workbench.lake.browser  # noqa: F401 - its error classes join the registry
from workbench.core.errors import (
    CatalogError,
    ComputationError,
    ConfigError,
    EngineError,
    InternalError,
    NotFoundError,
    ServiceUnavailableError,
    SourceError,
    StorageError,
    Terminal,
    Transient,
    WorkbenchError,
    error_class,
    error_classes,
    error_code,
    is_terminal,
    is_transient,
    should_retry,
)


def _loaded(root: type[WorkbenchError]) -> list[type[WorkbenchError]]:
    found = [root]
    for sub in root.__subclasses__():
        found += _loaded(sub)
    return found


def test_every_error_class_has_a_code_of_its_own() -> None:
    classes = _loaded(WorkbenchError)
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    # Each class is found again by its code: what a client rebuilds from an HTTP answer.
    assert all(error_class(cls.code) is cls for cls in classes)
    assert set(error_classes()) == set(codes)


def test_every_error_class_is_either_transient_or_terminal() -> None:
    unmarked = [
        cls.__name__
        for cls in _loaded(WorkbenchError)[1:]
        if issubclass(cls, Transient) == issubclass(cls, Terminal)
    ]
    assert unmarked == []


@pytest.mark.parametrize(
    ("err", "transient", "terminal"),
    [
        (EngineError("lost an executor"), True, False),
        (StorageError("store down"), True, False),
        (ServiceUnavailableError("broker away"), True, False),
        (ConnectionResetError("reset by peer"), True, False),
        (TimeoutError("read timed out"), True, False),
        (ConfigError("bad setting"), False, True),
        (NotFoundError("no such table"), False, True),
        (ComputationError("bad SQL"), False, True),
        (SourceError("HTTP 404"), False, True),
        (InternalError("a bug"), False, True),
        (ValueError("unknown"), False, False),
        (OSError("unknown OS error"), False, False),
        (WorkbenchError("unmarked"), False, False),
    ],
)
def test_the_markers_and_known_os_errors_decide(
    err: BaseException, transient: bool, terminal: bool
) -> None:
    assert (is_transient(err), is_terminal(err)) == (transient, terminal)


def test_terminal_never_retried_transient_always_unknown_a_bounded_number_of_times() -> None:
    def tries(err: BaseException, limit: int = 50) -> int:
        failures = 1
        while failures < limit and should_retry(err, failures, unknown_attempts=3):
            failures += 1
        return failures

    assert tries(ConfigError("broken")) == 1
    assert tries(ValueError("a bug")) == 3
    assert tries(StorageError("store down")) == 50  # the loop's backoff bounds it, not a count


def test_an_unknown_code_falls_back_to_the_most_general_class_of_its_status() -> None:
    assert error_class("made_up", 503) is ServiceUnavailableError
    assert error_class(None, 404) is NotFoundError
    assert error_class(None, 409) is CatalogError
    assert error_class(None, 422) is ConfigError
    assert error_class("made_up", 418) is WorkbenchError


def test_codes_of_foreign_errors_are_their_class_names() -> None:
    assert error_code(OSError("x")) == "os_error"
    assert error_code(ConnectionResetError("x")) == "connection_reset_error"
    assert error_code(EngineError("x")) == "engine_error"


def test_to_dict_carries_code_message_and_fields() -> None:
    err = NotFoundError("no stream named 'x'", stream="x")
    assert err.to_dict() == {
        "code": "not_found",
        "message": "no stream named 'x'",
        "fields": {"stream": "x"},
    }
