"""The price book: versions by effective date, integer micro-units, cached and GPU-hour prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tenantgate.billing.prices import PriceBook, config_prices, gpu_cost, to_micros, token_cost
from tenantgate.domain import Usage
from tenantgate.settings import CatalogConfig, ModelPrice

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def book() -> PriceBook:
    catalog = CatalogConfig(
        aliases={"small": "m"},
        prices={
            "m": (
                ModelPrice(input_per_1m=0.5, output_per_1m=1.5),
                ModelPrice(input_per_1m=1, output_per_1m=3, cached_per_1m=0.1, per_gpu_hour=2.4, effective_from=T0),
            )
        },
    )
    return PriceBook(catalog.aliases, config_prices(catalog))


def test_the_version_in_force_is_snapshotted_by_moment_and_alias() -> None:
    prices = book()
    before, after = T0 - timedelta(microseconds=1), T0
    assert prices.cost("m", Usage(2, 2), 0.0, before) == (4, "m@1970-01-01T00:00:00Z")  # 2*0.5 + 2*1.5
    assert prices.cost("small", Usage(2, 2), 0.0, after) == (8, "m@2026-12-01T00:00:00Z")
    assert prices.cost("unpriced", Usage(10, 10), 1.0, after) == (0, None)


def test_cached_prompt_tokens_and_gpu_time_are_priced_on_their_own() -> None:
    price = book().at("m", T0)
    assert price is not None
    # 1M prompt tokens of which 400k cached: 600k at $1 + 400k at $0.10 = $0.64; 1M out at $3
    assert token_cost(price, Usage(1_000_000, 1_000_000, 400_000)) == 640_000 + 3_000_000
    assert gpu_cost(price, 3600.0) == 2_400_000 and gpu_cost(price, 1.5) == 1_000  # $2.40/h


def test_money_is_exact_in_micro_units() -> None:
    assert to_micros(0.1) + to_micros(0.2) == to_micros(0.3) == 300_000
    assert to_micros("19.999999") == 19_999_999 and to_micros(1e-7) == 0 and to_micros(5e-7) == 1


def test_a_stored_version_wins_over_the_configured_one_at_the_same_moment() -> None:
    prices = book()
    configured = prices.at("m", T0)
    assert configured is not None
    from dataclasses import replace

    prices.replace([replace(configured, id="api", output_micros_per_1m=9_000_000)])
    assert prices.cost("m", Usage(0, 1), 0.0, T0) == (9, "m@2026-12-01T00:00:00Z")
    assert len(prices.versions()) == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"input_per_1m": -1, "output_per_1m": 1},
        {"input_per_1m": 1, "output_per_1m": 1e12},
        {"input_per_1m": 1, "output_per_1m": 1, "effective_from": "2026-12-01T00:00:00"},
    ],
)
def test_negative_absurd_or_naive_prices_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CatalogConfig.model_validate({"prices": {"m": bad}})
