from tenantgate.domain import Limits
from tenantgate.plans import plan_limits, rules_by_plan
from tenantgate.settings import CatalogConfig, PlanConfig


def test_monthly_cap_blocks_only_hard_plans_after_burst_credits() -> None:
    hard = PlanConfig(name="h", display_name="H", monthly_tokens=1000, burst_credits=200, cap="hard")
    assert plan_limits(hard).monthly_tokens == 1200
    for cap in ("soft", "overage"):
        softer = hard.model_copy(update={"cap": cap})
        assert plan_limits(softer).monthly_tokens is None
        assert rules_by_plan(CatalogConfig(plans=(softer,)))("h").included_tokens == 1000  # notifies instead
    assert rules_by_plan(CatalogConfig(plans=(hard,)))("h").included_tokens is None


def test_budget_in_micro_dollars_and_unknown_plans_are_unlimited() -> None:
    plan = PlanConfig(name="b", display_name="B", rpm=5, budget_usd=12.5, allowed_pools=("gpu",))
    rules = rules_by_plan(CatalogConfig(plans=(plan,)))
    assert rules("b").limits == Limits(rpm=5, budget_micros=12_500_000)
    assert rules("b").allowed_pools == frozenset({"gpu"})
    assert rules("nope").limits.unlimited and rules("nope").allowed_pools is None


def test_a_deposit_plan_names_the_plan_that_applies_until_then() -> None:
    import pytest
    from pydantic import ValidationError

    trial = PlanConfig(name="trial", display_name="Trial", rpm=2)
    for broken in (
        {"prepaid_required_usd": 100},
        {"until_prepaid": "trial"},
        {"prepaid_required_usd": 100, "until_prepaid": "vip"},
        {"prepaid_required_usd": 100, "until_prepaid": "nowhere"},
    ):
        vip = PlanConfig(name="vip", display_name="VIP", **broken)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            CatalogConfig(plans=(trial, vip))
