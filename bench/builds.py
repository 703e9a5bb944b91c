"""The two builds a before-and-after compares: git refs checked out as temporary worktrees, or this
checkout itself; and the table of their medians."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from procs import TENANTGATE, bytecode, free_port
from run import ADMIN, tenantgate_config

ROOT = Path(__file__).resolve().parent.parent
# The gateways under test get a core of their own; the script, the load and the upstream share the
# rest, so the builds never compete with the load generator for the same core.
GATEWAY_CORE = ["taskset", "-c", "1"] if (os.cpu_count() or 1) >= 2 else []


def add_refs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--before", required=True, help="git ref of the earlier code")
    parser.add_argument("--after", default=None, help="git ref of the later code (default: this checkout)")


@contextmanager
def checkouts(before: str, after: str | None, workdir: Path) -> Iterator[dict[str, Path]]:
    """{"before": tree, "after": tree}; worktrees made under `workdir` are removed at the end."""
    trees = {"before": workdir / "before", "after": workdir / "after" if after else ROOT}
    made = []
    try:
        for name, ref in (("before", before), ("after", after)):
            if ref:
                add = ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(trees[name]), ref]
                subprocess.run(add, check=True)
                made.append(trees[name])
        for tree in trees.values():
            bytecode(tree / "src")
        yield trees
    finally:
        for tree in made:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def medians(samples: Mapping[str, Sequence[Mapping[str, float]]], number: str = "{:>10.2f}") -> None:
    """Print each metric's median for every build and each later build's ratio to the first, e.g.
    after/before (blank where the first reported 0)."""
    names = list(samples)
    width = max(len(number.format(0.0)), *(len(name) + 1 for name in names))
    ratios = [f"{name}/{names[0]}" for name in names[1:]]
    head = "".join(f"{name:>{width}}" for name in names) + "".join(f"{r:>{len(r) + 2}}" for r in ratios)
    print(f"{'metric':<20}{head}")
    for metric in samples[names[0]][0]:
        values = [statistics.median(s[metric] for s in samples[name]) for name in names]
        line = f"{metric:<20}" + "".join(f"{number.format(v):>{width}}" for v in values)
        for ratio, value in zip(ratios, values[1:], strict=True):  # blank: a metric the first build does not report
            line += f"{value / values[0]:>{len(ratio) + 2}.3f}" if values[0] else " " * (len(ratio) + 2)
        print(line)


def serve_args(name: str, upstream: str, workdir: Path, source: Path) -> tuple[list[str], dict[str, str], str]:
    """A gateway of the build at `source` (its src directory) with bench/run.py's configuration, in a
    home of its own under `workdir`: (its command, its environment, its URL)."""
    home = workdir / f"{name}-gateway"
    home.mkdir()
    config = home / "tenantgate.yaml"
    config.write_text(json.dumps(tenantgate_config(upstream)))  # JSON is YAML
    env = {"TENANTGATE_ADMIN_TOKEN": ADMIN, "TENANTGATE_DATA_DIR": str(home / "data"), "PYTHONPATH": str(source)}
    port = free_port()
    args = [*TENANTGATE, "serve", "--port", str(port), "--config", str(config)]
    return [*args, "--database-url", f"sqlite:///{home / 'bench.db'}"], env, f"http://127.0.0.1:{port}"
