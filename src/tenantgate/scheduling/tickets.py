"""What the scheduler knows about one request, and what serving it costs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prices:
    """Cost of service in the VTC sense: `prompt * w_p + output * w_q` (OpenAI-like 1:2 by default)."""

    prompt: float = 1.0
    output: float = 2.0

    def cost(self, prompt_tokens: int, output_tokens: int) -> float:
        return self.prompt * prompt_tokens + self.output * output_tokens


@dataclass(eq=False, slots=True)
class Ticket:
    """One request waiting for, or holding, a place on a deployment. Compared by identity.

    `max_output` is what the request may generate (its `max_tokens`), reserved in the in-flight token
    budget; the scheduler never assumes a request uses all of it when ordering or forecasting.
    """

    tenant: str
    prompt_tokens: int
    max_output: int
    arrival: float
    weight: float = 1.0
    seq: int = 0  # arrival order, set by the queue
    dispatched_at: float | None = None
    output_charged: int = 0
    predicted_output: int = 0  # predicted-cost VTC: output charged at dispatch, corrected as it streams

    @property
    def budget_tokens(self) -> int:
        return self.prompt_tokens + self.max_output
