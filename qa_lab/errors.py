"""User-facing errors: what went wrong, where, and how to fix it, without a library traceback."""


class QALabError(Exception):
    """An error caused by input or configuration, reported to the user as a one-paragraph message."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.message())

    def message(self) -> str:
        parts = [f"{self.where}: {self.what}" if self.where else self.what]
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        return "\n".join(parts)


class DataError(QALabError):
    """A data file or data set that cannot be used as it is."""


class ConfigError(QALabError):
    """A composed configuration that would fail later, caught before any work starts."""


class HubUnavailableError(QALabError):
    """A model or data set that is neither local, nor cached, nor reachable on the Hub."""


class StorageError(QALabError):
    """A run file that could not be written: a full disk, a used-up quota, a read-only file system."""
