"""A declarative step: its name, its actions, its component; what a worker's spec carries.

Apart from prober.contracts.config on purpose: the worker validates steps in every spec
but never loads a scenario file, and config's YAML loading, `${...}` expansion and
script check cost each worker ~0.05 CPU-s of imports.
"""

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from prober.contracts.actions import Action, normalize_action
from prober.contracts.slo import SLO

STEP_NAME = r"^[a-z0-9_]+$"
# The `component` label (the part of the flow a step exercises: app, idp, cdn...).
COMPONENT_NAME = r"^[a-z0-9_]+$"


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=STEP_NAME)
    actions: list[Annotated[Action, BeforeValidator(normalize_action)]] = Field(min_length=1)
    # Only `prober rules` reads it; excluded from the worker's spec, which re-validates steps.
    slo: SLO | None = Field(default=None, exclude=True)
    # None: the scenario's own component.
    component: str | None = Field(default=None, pattern=COMPONENT_NAME, max_length=63)
