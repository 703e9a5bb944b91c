"""The VTC paper's experiments, side by side with the artifact's published numbers.

Runs every suite through `tenantgate bench fairness` (the real scheduler over the engine model in
virtual time) and prints the markdown table in docs/fairness.md; the raw reports go to
bench/results/fairness.json. Usage: python bench/fairness_table.py
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from tenantgate.fairbench.runner import Experiment, run
from tenantgate.fairbench.workloads import suite

# research/fairness.md §4, recomputed from the VTC artifact's result files (A10G, Llama-2-7B):
# throughput tok/s, service per client, mean TTFT per client (s), service difference avg / max, acc |ΔS|
ARTIFACT: dict[tuple[str, str], tuple[str, str, str, str, str]] = {
    ("overload", "vtc"): ("893", "681 / 670", "124 / 353", "104 / 193", "9 050"),
    ("overload", "fcfs"): ("876", "438 / 877", "485 / 485", "439 / 447", "237 738"),
    ("overload-multi", "vtc"): ("875", "164 to 167 each", "150 / 295", "162 / 322", "2 976"),
    ("overload-multi", "fcfs"): ("875", "126 / 189", "≈256 all", "231 / 248", "34 823"),
    ("overload-weighted", "vtc"): ("900", "135 / 271 / 406 / 541", "225 each", "—", "—"),
    ("proportional", "vtc"): ("883", "191 / 382 / 761", "4.8 / 4.9 / 124", "9.9 / 26", "n/a"),
    ("proportional", "fcfs"): ("856", "144 / 287 / 862", "97 / 97 / 96", "145 / 157", "n/a"),
    ("on_off_less", "vtc"): ("877", "187 / 1136", "3.5 / 102", "56 / 69", "n/a"),
    ("on_off_less", "fcfs"): ("875", "150 / 1171", "85 / 93", "116 / 276", "n/a"),
    ("on_off_overload", "vtc"): ("879", "659 / 662", "75 / 509", "110 / 223", "7 541"),
    ("on_off_overload", "fcfs"): ("876", "323 / 992", "374 / 413", "433 / 1 317", "363 415"),
    ("poisson_short_long", "vtc"): ("1 445", "1 020 / 1 018", "133 / 45", "34 / 133", "5 235"),
    ("poisson_short_long", "fcfs"): ("1 476", "1 318 / 936", "69 / 68", "209 / 355", "204 786"),
    ("poisson_short_long_2", "vtc"): ("1 671", "781 / 780", "902 / 303", "13.7 / 47", "1 281"),
    ("poisson_short_long_2", "fcfs"): ("1 923", "1 679 / 609", "250 / 245", "871 / 1 124", "274 154"),
    ("increase", "vtc"): ("744", "382 / 756", "0.35 / 14.6", "6.5 / 23", "n/a"),
    ("increase", "fcfs"): ("743", "360 / 777", "7.2 / 11.7", "28 / 90", "n/a"),
    ("dist_shift", "vtc"): ("903", "—", "16.3 / 124", "31 / 119", "n/a"),
    ("dist_shift", "lcf"): ("899", "—", "4.1 / 133", "72 / 186", "n/a"),
    ("poisson_on_off_overload", "vtc"): ("870", "199 / 1129", "1.45 / 125", "62 / 106", "n/a"),
    ("poisson_on_off_overload", "fcfs"): ("871", "157 / 1171", "102 / 112", "140 / 410", "n/a"),
}
WEIGHTS = {"client0": 1.0, "client1": 2.0, "client2": 3.0, "client3": 4.0}


def _join(values: dict[str, float], digits: int = 0) -> str:
    return " / ".join(f"{v:,.{digits}f}".replace(",", " ") for v in values.values())


def main() -> None:
    rows, raw = [], []
    for (name, scheduler), published in ARTIFACT.items():
        weights = WEIGHTS if name == "overload-weighted" else None
        started = time.perf_counter()
        report = run(suite(name), Experiment(scheduler, weights))
        elapsed = time.perf_counter() - started
        raw.append({"suite": name, "scheduler": scheduler, "wall_s": elapsed, **dataclasses.asdict(report)})
        ours = (
            f"{report.throughput_tok_s:,.0f}".replace(",", " "),
            _join(report.service_rate),
            _join(report.mean_ttft_s, 1),
            f"{report.service_diff_avg:.1f} / {report.service_diff_max:.0f}",
            f"{report.acc_service_diff_max:,.0f}".replace(",", " "),
        )
        label = "wvtc 1:2:3:4" if weights else scheduler
        cells = [f"{o} ({p})" for o, p in zip(ours, published, strict=True)]
        rows.append(f"| {name} | {label} | " + " | ".join(cells) + f" | {elapsed:.1f} s |")
    out = Path(__file__).with_name("results") / "fairness.json"
    out.write_text(json.dumps(raw, indent=1))
    print("| suite | scheduler | throughput tok/s | service per client (cost/s) | mean TTFT per client (s) "
          "| service diff avg / max | max acc. abs(ΔS) | wall |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
