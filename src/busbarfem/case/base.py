"""Common base for every case-file model: strict, SI units, documented fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base model: unknown keys are errors, values are validated on assignment, and every
    float must be finite (also when written as a string such as ``"inf"`` or ``1e999``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)
