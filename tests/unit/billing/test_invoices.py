"""Invoice composition: fee, metered usage, overage with its floor, burst credits, GPU-minutes, and
prepaid credit burned soonest-expiring first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tenantgate.billing.invoices import compose, parse_month
from tenantgate.billing.records import CreditGrant, Rollup, RollupKey
from tenantgate.errors import InvalidRequest
from tenantgate.settings import PlanConfig

NOV = datetime(2026, 11, 1, tzinfo=UTC)


def day_row(model: str, tokens: int, charged: int = 0, gpu_seconds: float = 0.0) -> Rollup:
    row = Rollup(RollupKey(NOV, "t1", "k", "", "chat/completions", model, "d", "p"))
    row.requests, row.prompt_tokens, row.completion_tokens = 1, tokens // 2, tokens - tokens // 2
    row.charged_micros, row.gpu_seconds = charged, gpu_seconds
    return row


def amounts(document: dict[str, object]) -> dict[str, int]:
    lines = document["lines"]
    assert isinstance(lines, list)
    return {line["id"].split(":", 1)[1]: line["amount_micros"] for line in lines}


def invoice(
    plan: PlanConfig, rows: list[Rollup], grants: tuple[CreditGrant, ...] = (), applied: dict[str, int] | None = None
) -> tuple[dict[str, object], list[tuple[str, int]]]:
    return compose("t1", "acme", "2026-11", plan, rows, grants, applied or {}, "USD")


def test_an_overage_plan_bills_past_its_included_tokens_never_below_the_floor() -> None:
    plan = PlanConfig(name="g", display_name="Growth", monthly_tokens=1000, cap="overage", overage_usd_per_1k=2,
                      overage_floor_usd=5, monthly_fee_usd=99)  # fmt: skip
    document, _ = invoice(plan, [day_row("a", 800), day_row("b", 700)])
    # 500 tokens over: 0.5 x $2 = $1, raised to the $5 floor; usage lines show the tokens at 0
    assert amounts(document) == {"subscription": 99_000_000, "usage:a": 0, "usage:b": 0, "included:tokens": 0,
                                 "overage:tokens": 5_000_000}  # fmt: skip
    included = next(line for line in document["lines"] if line["kind"] == "included")  # type: ignore[attr-defined]
    assert included["quantity"] == "1000" and "1,000 of 1,000 tokens" in included["description"]
    assert document["total_micros"] == 104_000_000
    big, _ = invoice(plan, [day_row("a", 10_000)])
    assert amounts(big)["overage:tokens"] == 18_000_000  # 9,000 over at $2 per 1k
    under, _ = invoice(plan, [day_row("a", 1000)])
    assert "overage:tokens" not in amounts(under)  # none: no floor either


def test_a_metered_plan_bills_each_model_at_what_its_requests_were_charged() -> None:
    plan = PlanConfig(name="payg", display_name="Pay as you go")
    document, _ = invoice(plan, [day_row("a", 10, charged=1234), day_row("a", 10, charged=1), day_row("b", 5, 7)])
    assert amounts(document) == {"usage:a": 1235, "usage:b": 7}


def test_gpu_minutes_past_the_included_ones_and_burst_credits() -> None:
    plan = PlanConfig(name="gpu", display_name="GPU", included_gpu_minutes=10, overage_usd_per_gpu_minute=0.5,
                      monthly_tokens=100, burst_credits=50, cap="hard")  # fmt: skip
    document, _ = invoice(plan, [day_row("a", 130, gpu_seconds=900.0)])  # 15 GPU-minutes, 30 burst tokens
    assert amounts(document) == {"usage:a": 0, "included:tokens": 0, "included:gpu_minutes": 0, "burst": 0,
                                 "overage:gpu_minutes": 2_500_000}  # fmt: skip
    lines = {line["id"].split(":", 1)[1]: line for line in document["lines"]}  # type: ignore[attr-defined]
    assert lines["burst"]["quantity"] == "30" and lines["overage:gpu_minutes"]["quantity"] == "5.000000"
    assert lines["included:gpu_minutes"]["quantity"] == "10.000000"


def test_prepaid_credit_burns_soonest_expiring_then_oldest_and_never_past_what_is_due() -> None:
    plan = PlanConfig(name="f", display_name="Fee", monthly_fee_usd=100)
    end = NOV + timedelta(days=30)
    grants = (
        CreditGrant("old", "t1", 70_000_000, NOV - timedelta(days=60), None, "old"),
        CreditGrant("soon", "t1", 50_000_000, NOV - timedelta(days=1), end + timedelta(days=1), "soon"),
        CreditGrant("expired", "t1", 999_000_000, NOV - timedelta(days=90), end - timedelta(days=1), "gone"),
        CreditGrant("late", "t1", 999_000_000, end + timedelta(days=1), None, "after the month"),
    )
    document, applied = invoice(plan, [], grants, {"soon": 20_000_000})
    assert applied == [("soon", 30_000_000), ("old", 70_000_000)]
    assert document["subtotal_micros"] == 100_000_000 and document["total_micros"] == 0
    line_ids = [line["id"] for line in document["lines"]]  # type: ignore[attr-defined]
    assert line_ids == ["inv-t1-202611:subscription", "inv-t1-202611:credit:soon", "inv-t1-202611:credit:old"]


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "26-11", "2026-1", "november", "1999-12", ""])
def test_months_that_do_not_exist_are_refused(month: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_month(month)
    assert refused.value.code == "invalid_month"


def test_leap_february_and_december() -> None:
    assert parse_month("2028-02") == (datetime(2028, 2, 1, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC))
    assert parse_month("2026-12")[1] == datetime(2027, 1, 1, tzinfo=UTC)
