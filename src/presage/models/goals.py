"""What each model predicts: its label, the Feast service it reads and how it is judged.

One table for the built-in goals; a custom goal (a user's label table) is the same record with
kind "custom". The primary metric decides champion against challenger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["purchase", "churn", "spend", "channel_response", "custom"]


@dataclass(frozen=True)
class Goal:
    name: str
    kind: Kind
    service: str
    description: str

    @property
    def objective(self) -> Literal["binary", "regression"]:
        return "regression" if self.kind == "spend" else "binary"

    @property
    def primary_metric(self) -> str:
        """Ranking quality on the holdout: who to contact first is what marketers act on."""
        return "gini" if self.objective == "regression" else "auc"


BUILT_IN: dict[str, Goal] = {
    goal.name: goal
    for goal in (
        Goal("purchase_propensity", "purchase", "purchase_propensity", "orders at least once within the horizon"),
        Goal("churn_risk", "churn", "churn_risk", "an active customer places no order within the horizon"),
        Goal("expected_spend", "spend", "expected_spend", "revenue of completed orders within the horizon"),
        Goal("channel_response", "channel_response", "channel_response",
             "converts on a channel within the horizon after being contacted on it"),
    )
}
CUSTOM_SERVICE = "custom_goal"


def goal_for(name: str, custom_labels: str | None = None) -> Goal:
    """The built-in goal of this name, or a custom goal when a label table is given.

    Raises:
        ValueError: an unknown name without a label table, or a label table for a built-in name.
    """
    if custom_labels:
        if name in BUILT_IN:
            raise ValueError(f"{name} is a built-in model; give a custom goal another name")
        if not name.replace("_", "").isalnum():
            raise ValueError(f"model name {name!r}: use letters, digits and underscores")
        return Goal(name, "custom", CUSTOM_SERVICE, f"custom goal from the label table {custom_labels}")
    if name not in BUILT_IN:
        raise ValueError(f"unknown model {name!r}; built-in: {sorted(BUILT_IN)}, or pass --labels for a custom goal")
    return BUILT_IN[name]
