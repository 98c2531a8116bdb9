"""The base of every config model: unknown keys are errors, because a typo such as
``intervall: 5s`` that is silently ignored is a check that never does what its author thinks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
