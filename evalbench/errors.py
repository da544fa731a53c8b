"""User-facing errors: each renders as one actionable line; the CLI maps them to exit code 2."""

from __future__ import annotations

from pathlib import Path


class EvalbenchError(Exception):
    """An error the user can act on; `str(err)` is the whole message."""

    exit_code = 2


class InputError(EvalbenchError):
    """Bad input, located as precisely as we can: file, line (1-based) and field."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = ""
        if self.path:
            where = self.path
            if line is not None:
                where += f":{line}"
        if field:
            where = f"{where} [{field}]" if where else f"[{field}]"
        super().__init__(f"{where}: {message}" if where else message)


class MissingExtra(EvalbenchError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str, *, alternative: str | None = None):
        self.module = module
        self.extra = extra
        hint = f"pip install 'evalbench[{extra}]'"
        if alternative:  # e.g. the CUDA build of a package whose default extra is the CPU one
            hint += f" ({alternative})"
        super().__init__(f"'{module}' is not installed; install it with: {hint}")


class ServerError(EvalbenchError):
    """A model server failed to start, died, or could not be reached."""


def require(module: str, extra: str):
    """Import `module` or raise MissingExtra naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # only the top-level package missing is "not installed"
        if exc.name and module.split(".")[0] != exc.name.split(".")[0]:
            raise
        raise MissingExtra(module, extra) from exc
