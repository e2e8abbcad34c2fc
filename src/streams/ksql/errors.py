"""Why a statement is rejected: ksqlDB's KsqlStatementException, with where it came from."""

from __future__ import annotations


class KsqlError(Exception):
    """A statement ksqlDB would reject (unknown source, bad type, unsupported feature...).

    ``message`` says what is wrong in ksqlDB's words where it has them; ``statement`` is the
    text of the statement, when known."""

    def __init__(self, message: str, statement: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.statement = statement

    def __str__(self) -> str:
        if self.statement:
            return f"{self.message}\nStatement: {self.statement}"
        return self.message


class KsqlSyntaxError(KsqlError):
    """Text that is not ksqlDB SQL, at ``line`` and ``column`` (1-based)."""

    def __init__(self, message: str, line: int, column: int, statement: str | None = None):
        super().__init__(f"line {line}:{column}: {message}", statement)
        self.line = line
        self.column = column


class Unsupported(KsqlError):
    """Valid ksqlDB that streams.ksql does not run yet (a format, a join kind, a function):
    the conformance runner counts such a case as not applicable, with this reason."""
