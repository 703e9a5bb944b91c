"""The request streams of the fairness experiments (research/fairness.md §2.1 and §2.2), seeded.

Arrival processes: `uniform` is deterministic spacing 1/rate per client with a random phase;
`on_off` drops client 0's arrivals in odd minutes; `poisson` is one merged Poisson stream whose
requests go to each client in proportion to its rate; `increase` ramps client 1's rate linearly.
"""

from __future__ import annotations

import csv
import itertools
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Arrival:
    time: float
    client: str
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    duration: float
    arrivals: tuple[Arrival, ...]
    clients: tuple[str, ...]


Lengths = Callable[[random.Random], tuple[int, int]]


def fixed(prompt: int, output: int) -> Lengths:
    return lambda _rng: (prompt, output)


def uniform_lengths(low: int, high: int) -> Lengths:
    return lambda rng: (rng.randrange(low, high), rng.randrange(low, high))


def _client(index: int) -> str:
    return f"client{index}"


def uniform(
    rng: random.Random, rates: Sequence[float], lengths: Sequence[Lengths], duration: float,
    start: float = 0.0, on_off: float | None = None,
) -> list[Arrival]:  # fmt: skip
    arrivals = []
    for index, rate in enumerate(rates):
        phase = rng.uniform(0, 1 / rate)
        for k in range(int(rate * duration)):
            t = phase + k / rate
            if index == 0 and on_off is not None and int(t // on_off) & 1:
                continue
            arrivals.append(Arrival(start + t, _client(index), *lengths[index](rng)))
    return arrivals


def poisson(
    rng: random.Random, rates: Sequence[float], lengths: Sequence[Lengths], duration: float,
    on_off: float | None = None,
) -> list[Arrival]:  # fmt: skip
    total = sum(rates)
    arrivals: list[Arrival] = []
    t = 0.0
    while True:
        t += rng.expovariate(total)
        if t >= duration:
            return arrivals
        index = rng.choices(range(len(rates)), weights=rates)[0]
        if index == 0 and on_off is not None and int(t // on_off) & 1:
            continue
        arrivals.append(Arrival(t, _client(index), *lengths[index](rng)))


def increase(rng: random.Random, duration: float) -> list[Arrival]:
    arrivals = uniform(rng, [0.5], [fixed(256, 256)], duration)
    low, high = 0.2, 2.0
    phase = rng.random()
    # Requests arrive where the integral of the rate, low*t + (high-low)*t²/(2T), crosses k + phase.
    slope = (high - low) / duration
    k = 0
    while True:
        need = k + phase
        t = (-low + math.sqrt(low * low + 2 * slope * need)) / slope
        if t >= duration:
            return arrivals
        arrivals.append(Arrival(t, _client(1), 256, 256))
        k += 1


_SAME = fixed(256, 256)

# The paper's real trace (research/fairness.md §2.1: 27 clients, 1,500 requests over 600 s) is not
# public; `heavy_tailed` draws one with its published statistics. Lengths follow quantile curves
# through the published points, interpolated geometrically (heavy-tailed between them), with one
# extra output knot so the mean comes out near the published 256.
_PROMPT_QUANTILES = ((0.0, 1.0), (0.5, 40.0), (0.9, 432.0), (1.0, 1021.0))  # mean ≈ 140
_OUTPUT_QUANTILES = ((0.0, 1.0), (0.1, 60.0), (0.5, 211.0), (0.9, 513.0), (1.0, 977.0))  # mean ≈ 257
_TOP_CLIENTS = (296, 262, 199, 120, 67, 66, 56)  # the published per-client counts; 20 more follow, down to 1
TRACE_CLIENTS, TRACE_REQUESTS, TRACE_DURATION_S = 27, 1500, 600.0


def _quantile(curve: Sequence[tuple[float, float]], u: float) -> int:
    for (p0, v0), (p1, v1) in itertools.pairwise(curve):
        if u <= p1:
            growth: float = (v1 / v0) ** ((u - p0) / (p1 - p0))
            return max(1, round(v0 * growth))
    return round(curve[-1][1])


def trace_counts() -> list[int]:
    """Requests per client: the published top seven, then 20 more falling from 55 to 1 along
    1 + 54·x^g (x from 1 to 0), with g chosen so that the total is 1,500."""
    rest = TRACE_REQUESTS - sum(_TOP_CLIENTS)
    n = TRACE_CLIENTS - len(_TOP_CLIENTS)

    def tail(g: float) -> list[int]:
        return [round(1 + 54 * ((n - 1 - k) / (n - 1)) ** g) for k in range(n)]

    low, high = 1.0, 4.0  # bisection on g: a larger g falls faster and sums to less
    for _ in range(60):
        g = (low + high) / 2
        low, high = (g, high) if sum(tail(g)) > rest else (low, g)
    counts = tail(high)
    counts[1] += rest - sum(counts)  # what rounding left over
    return [*_TOP_CLIENTS, *counts]


def heavy_tailed(rng: random.Random) -> list[Arrival]:
    arrivals = []
    for index, count in enumerate(trace_counts()):
        for _ in range(count):
            prompt = _quantile(_PROMPT_QUANTILES, rng.random())
            output = _quantile(_OUTPUT_QUANTILES, rng.random())
            arrivals.append(Arrival(rng.uniform(0, TRACE_DURATION_S), _client(index), prompt, output))
    return arrivals


def _dist_shift(rng: random.Random) -> list[Arrival]:
    phases = (([0.5, 2.0], 60.0), ([1.0, 1.0], None), ([0.5, 1.5], None))
    arrivals: list[Arrival] = []
    for index, (rates, on_off) in enumerate(phases):
        arrivals += uniform(rng, rates, [_SAME] * len(rates), 300, start=300 * index, on_off=on_off)
    return arrivals


# name -> (duration in seconds, generator); research/fairness.md §2.2
_SUITES: dict[str, tuple[float, Callable[[random.Random], list[Arrival]]]] = {
    "overload": (360, lambda rng: uniform(rng, [1.5, 3], [_SAME] * 2, 360)),
    "overload-multi": (360, lambda rng: uniform(rng, [0.4] * 3 + [0.6] * 5, [_SAME] * 8, 360)),
    "overload-weighted": (360, lambda rng: uniform(rng, [0.4, 0.8, 1.2, 1.6], [_SAME] * 4, 360)),
    "proportional": (600, lambda rng: uniform(rng, [0.25, 0.5, 1.5], [_SAME] * 3, 600)),
    "on_off_less": (600, lambda rng: uniform(rng, [0.5, 2.0], [_SAME] * 2, 600, on_off=60)),
    "on_off_overload": (600, lambda rng: uniform(rng, [2.0, 3.0], [_SAME] * 2, 600, on_off=60)),
    "poisson_short_long": (600, lambda rng: poisson(rng, [8, 1.5], [fixed(64, 64), _SAME], 600)),
    "poisson_short_long_2": (600, lambda rng: poisson(rng, [8, 1.5], [fixed(512, 32), fixed(32, 512)], 600)),
    "poisson_on_off_overload": (
        600,
        lambda rng: poisson(rng, [0.5, 2], [uniform_lengths(16, 512)] * 2, 600, on_off=60),
    ),
    "increase": (600, lambda rng: increase(rng, 600)),
    "dist_shift": (900, _dist_shift),
    "heavy_tailed": (TRACE_DURATION_S, heavy_tailed),
}
SUITES = tuple(_SUITES)


def suite(name: str, seed: int = 42) -> Workload:
    if name not in _SUITES:
        raise ValueError(f"unknown suite '{name}'; choose one of: {', '.join(SUITES)}")
    duration, generate = _SUITES[name]
    return _workload(name, duration, generate(random.Random(seed)))  # noqa: S311 - workloads, not secrets


def _workload(name: str, duration: float, arrivals: list[Arrival]) -> Workload:
    arrivals.sort(key=lambda a: a.time)
    clients = tuple(sorted({a.client for a in arrivals}, key=_natural))
    return Workload(name, duration, tuple(arrivals), clients)


def _natural(name: str) -> list[str | int]:
    """client2 before client10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def write_trace(workload: Workload, path: Path) -> None:
    """The workload as a CSV that `load_trace` (and `--trace`) reads back."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp_s", "client", "prompt_tokens", "output_tokens"])
        for a in workload.arrivals:
            writer.writerow([f"{a.time:.3f}", a.client, a.prompt_tokens, a.output_tokens])


def load_trace(path: Path) -> Workload:
    """A CSV with header `timestamp_s,client,prompt_tokens,output_tokens`, one request per row."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        expected = ["timestamp_s", "client", "prompt_tokens", "output_tokens"]
        if reader.fieldnames != expected:
            raise ValueError(f"{path}: the header must be {','.join(expected)}")
        arrivals = []
        for line, row in enumerate(reader, start=2):
            try:
                arrival = Arrival(
                    float(row["timestamp_s"]), row["client"], int(row["prompt_tokens"]), int(row["output_tokens"])
                )
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: expected a number of seconds and two token counts") from None
            if arrival.time < 0 or arrival.prompt_tokens < 0 or arrival.output_tokens < 1 or not arrival.client:
                raise ValueError(f"{path}:{line}: times and prompts must be >= 0, outputs >= 1, clients named")
            arrivals.append(arrival)
    if not arrivals:
        raise ValueError(f"{path}: the trace has no requests")
    return _workload(path.stem, max(a.time for a in arrivals), arrivals)
