"""The base of every config section: pydantic, ``extra="forbid"`` so typos fail early, frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
