"""The price book: every version of every model's price, and the cost of a request under it.

Money is integer micro-units of the installation's currency. A price is quoted per 1M tokens, so
`tokens * micros-per-1M / 10^6` is the cost in micros; each request's token cost and GPU cost are
rounded to the micro once (half up), and that is what its usage event records and invoices add up.
Prompt tokens that the engine served from its cache are charged at the cached price; the rest at
the input price. Versions come from the YAML catalog and the admin API; at the same moment the
admin API's version wins.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from tenantgate.domain import Price, Usage
from tenantgate.settings import CatalogConfig, ModelPrice

_MICROS = Decimal(1_000_000)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(amount: float | Decimal | str) -> int:
    """A decimal amount of money in whole micro-units (half up); floats are read as their shortest form."""
    value = Decimal(str(amount)) if isinstance(amount, float) else Decimal(amount)
    return int((value * _MICROS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def version_of(price: Price) -> str:
    """The id an event snapshots: the model and the moment its price took effect."""
    return f"{price.model}@{price.effective_from.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def price_from_config(model: str, spec: ModelPrice) -> Price:
    cached = spec.input_per_1m if spec.cached_per_1m is None else spec.cached_per_1m
    return Price(
        id=f"config:{model}:{spec.effective_from:%Y%m%dT%H%M%S}",
        model=model,
        effective_from=spec.effective_from,
        input_micros_per_1m=to_micros(spec.input_per_1m),
        output_micros_per_1m=to_micros(spec.output_per_1m),
        cached_micros_per_1m=to_micros(cached),
        gpu_hour_micros=to_micros(spec.per_gpu_hour),
        created_at=EPOCH,
    )


def config_prices(catalog: CatalogConfig) -> list[Price]:
    prices = []
    for model, specs in catalog.prices.items():
        for spec in specs if isinstance(specs, tuple) else (specs,):
            prices.append(price_from_config(model, spec))
    return prices


def token_cost(price: Price, usage: Usage) -> int:
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    scaled = (
        (usage.prompt_tokens - cached) * price.input_micros_per_1m
        + cached * price.cached_micros_per_1m
        + usage.completion_tokens * price.output_micros_per_1m
    )
    return (scaled + 500_000) // 1_000_000


def gpu_cost(price: Price, gpu_seconds: float) -> int:
    if not price.gpu_hour_micros or not gpu_seconds:
        return 0
    return int((Decimal(repr(gpu_seconds)) * price.gpu_hour_micros / 3600).quantize(Decimal(1), ROUND_HALF_UP))


class PriceBook:
    def __init__(self, aliases: Mapping[str, str], configured: Iterable[Price] = ()) -> None:
        self._aliases = dict(aliases)
        self._configured = list(configured)
        self._versions: dict[str, list[Price]] = {}
        self._starts: dict[str, list[datetime]] = {}
        self.replace([])

    def replace(self, stored: Iterable[Price]) -> None:
        """Rebuild from the configured versions plus those stored through the admin API."""
        merged: dict[tuple[str, datetime], Price] = {}
        for price in (*self._configured, *stored):
            merged[(price.model, price.effective_from)] = price  # stored ones come last and win
        versions: dict[str, list[Price]] = {}
        for price in sorted(merged.values(), key=lambda p: (p.model, p.effective_from)):
            versions.setdefault(price.model, []).append(price)
        self._versions = versions
        self._starts = {model: [p.effective_from for p in ps] for model, ps in versions.items()}

    def versions(self) -> list[Price]:
        return [price for prices in self._versions.values() for price in prices]

    def at(self, model: str, moment: datetime) -> Price | None:
        """The price of `model` (or of the model its alias names) in force at `moment`."""
        name = model if model in self._versions else self._aliases.get(model, model)
        starts = self._starts.get(name)
        if not starts:
            return None
        index = bisect.bisect_right(starts, moment) - 1
        return None if index < 0 else self._versions[name][index]

    def cost(self, model: str, usage: Usage, gpu_seconds: float, moment: datetime) -> tuple[int, str | None]:
        """(micros, price version) for one request; (0, None) for a model without a price."""
        price = self.at(model, moment)
        if price is None:
            return 0, None
        return token_cost(price, usage) + gpu_cost(price, gpu_seconds), version_of(price)

    def estimate(self, model: str, prompt: int, completion: int) -> int:
        """Micros for budgets at admission: tokens only, at the price in force now."""
        price = self.at(model, datetime.now(UTC))
        return 0 if price is None else token_cost(price, Usage(prompt, completion))
