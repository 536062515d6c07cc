"""Range checks for the engine's settings objects, run when they are made (``__post_init__``).

A settings object lists everything wrong with it at once, each line naming the setting and what it may be, and
keeps what it accepts as plain Python numbers (a ``numpy.int64`` from a caller's array becomes an ``int``), so
the options travel as JSON and compare equal however they were made.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection

from xp_sdk.errors import InvalidInputError


class SettingsCheck:
    """Collects the problems of one frozen dataclass instance; :meth:`done` raises them together."""

    def __init__(self, owner: object) -> None:
        self._owner = owner
        self.problems: list[str] = []

    def _keep(self, name: str, value: object) -> None:
        object.__setattr__(self._owner, name, value)  # the owner is frozen; this is its own __post_init__

    def whole(self, name: str, low: int, high: int, *, optional: bool = False) -> None:
        """An integer from ``low`` to ``high`` (``None`` too when ``optional``)."""
        value = getattr(self._owner, name)
        if optional and value is None:
            return
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and low <= int(value) <= high:
            self._keep(name, int(value))
            return
        self.problems.append(f"{name} must be a whole number from {low} to {high}, got {_shown(value)}")

    def number(self, name: str, low: float, high: float, *, above_low: bool = False) -> None:
        """A finite number from ``low`` (excluded when ``above_low``) to ``high``."""
        value = getattr(self._owner, name)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number) and (low < number if above_low else low <= number) and number <= high:
                self._keep(name, number)
                return
        lowest = f"above {low:g}" if above_low else f"from {low:g}"
        self.problems.append(f"{name} must be a number {lowest} to {high:g}, got {_shown(value)}")

    def flag(self, name: str) -> None:
        value = getattr(self._owner, name)
        if isinstance(value, bool):
            return
        if type(value).__name__ == "bool_":  # numpy's
            self._keep(name, bool(value))
            return
        self.problems.append(f"{name} must be true or false, got {_shown(value)}")

    def choice(self, name: str, allowed: Collection[str]) -> None:
        value = getattr(self._owner, name)
        if not (isinstance(value, str) and value in allowed):
            self.problems.append(f"{name} must be one of {', '.join(sorted(allowed))}, got {_shown(value)}")

    def instance(self, name: str, kind: type) -> bool:
        """Whether the setting is a ``kind`` (a nested settings object), noting it when not."""
        value = getattr(self._owner, name)
        if isinstance(value, kind):
            return True
        self.problems.append(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
        return False

    def nested(self, validate: Callable[[], object]) -> None:
        """Run a nested settings object's own ``validate()`` and take its problems as this object's."""
        try:
            validate()
        except InvalidInputError as exc:
            self.problems.append(exc.message)

    def done(self, what: str) -> None:
        if self.problems:
            raise InvalidInputError(f"invalid {what}: " + "; ".join(self.problems))


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = ["SettingsCheck"]
