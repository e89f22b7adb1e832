"""User-facing errors: one clear message, exit code 2, never a traceback.

Library code raises :class:`CaseError` for anything the user can fix (bad key, bad
value, unknown region, unreadable file) and :class:`SolveError` when a solve fails
for a stated reason (PETSc divergence reason, NaN, Picard non-convergence).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str]) -> str | None:
    """Return the valid choice closest to ``word`` (or None if nothing is close)."""
    hits = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return hits[0] if hits else None


class CaseError(Exception):
    """A mistake in the user's input, located as precisely as we can.

    Args:
        message: what is wrong, in the user's terms.
        file: the case file (or data file) it came from.
        line: 1-based line number in ``file``.
        key: dotted path of the offending key (``geometry.busbars.0.width``).
        choices: the valid alternatives; the closest to ``bad`` is suggested.
        bad: the value or key the user wrote.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        choices: Iterable[str] | None = None,
        bad: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        self.choices = sorted({str(c) for c in choices}) if choices is not None else None
        self.bad = bad
        super().__init__(self.format())

    def format(self) -> str:
        """The one-paragraph message shown to the user."""
        where = ""
        if self.file:
            where = f"{self.file}"
            if self.line:
                where += f":{self.line}"
            where += ": "
        key = f"{self.key}: " if self.key else ""
        text = f"{where}{key}{self.message}"
        if self.choices is not None:
            shown = ", ".join(self.choices[:40]) + (" ..." if len(self.choices) > 40 else "")
            text += f"\n  valid choices: {shown}"
            if self.bad is not None:
                near = closest(self.bad, self.choices)
                if near:
                    text += f"\n  did you mean '{near}'?"
        return text


class SolveError(Exception):
    """A solve that failed for a stated reason; results written so far are kept.

    Args:
        message: what failed and why (PETSc converged reason, NaN, divergence).
        step: the time step or Picard iteration at which it failed.
        reason: short machine-readable reason stored in ``summary.json``.
    """

    exit_code = 3

    def __init__(self, message: str, *, step: int | None = None, reason: str = "solver failure"):
        self.step = step
        self.reason = reason
        super().__init__(message)
