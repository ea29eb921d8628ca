"""User-facing errors: each carries one line that names the bad value and the fix."""

from __future__ import annotations


class DDBenchError(Exception):
    """An error caused by the user's input or environment; the CLI prints it as one line and exits 2."""


class UnknownNameError(DDBenchError, KeyError):
    """A registry lookup for a name that nobody registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class DataError(DDBenchError):
    """Missing, truncated or unreadable dataset files."""


class ConfigError(DDBenchError):
    """A bad config override, IPC list, profile or option value."""


class PluginError(DDBenchError):
    """A plugin that cannot be loaded, or whose registered object cannot be imported."""


class DivergedError(DDBenchError):
    """A distillation produced a NaN or infinite loss."""


def check_finite(loss: float, method: str, iteration: int) -> None:
    """Stop a distillation whose loss became NaN or infinite (nothing is recorded for that cell)."""
    if loss != loss or loss in (float("inf"), float("-inf")):
        raise DivergedError(f"{method}: loss is {loss} at iteration {iteration}; lower its learning rate with -o")
