"""Steps as a worker's spec carries them: validated the same way as in a scenario file."""

import pytest
from pydantic import ValidationError

from prober.contracts.actions import Click, Goto
from prober.contracts.steps import Step


def test_a_step_takes_its_actions_in_the_short_form_and_keeps_its_slo_out_of_specs() -> None:
    step = Step.model_validate(
        {
            "name": "back_in_app",
            "actions": [{"goto": "http://app/"}, {"click": "text=Go"}],
            "slo": {"latency": {"duration_under": "750ms", "objective": "99%"}},
            "component": "idp",
        }
    )
    assert step.actions == [
        Goto(action="goto", url="http://app/"),
        Click(action="click", selector="text=Go"),
    ]
    assert step.slo is not None
    # The worker re-validates what the parent dumps: the slo is the parent's only.
    assert Step.model_validate_json(step.model_dump_json()) == step.model_copy(update={"slo": None})


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "Back In App"), ("component", "IdP"), ("actions", [])],
)
def test_a_bad_name_component_or_empty_actions_is_refused(field: str, value: object) -> None:
    raw: dict[str, object] = {"name": "home", "actions": [{"goto": "http://app/"}], field: value}
    with pytest.raises(ValidationError) as raised:
        Step.model_validate(raw)
    assert raised.value.errors()[0]["loc"][0] == field
