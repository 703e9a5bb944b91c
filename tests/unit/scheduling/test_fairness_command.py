from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tenantgate.cli.main import app
from tenantgate.fairbench.workloads import load_trace

runner = CliRunner()


def test_bench_fairness_prints_the_papers_metrics_as_json() -> None:
    result = runner.invoke(app, ["bench", "fairness", "--suite", "overload", "--scheduler", "fcfs", "--json"])
    assert result.exit_code == 0, result.output
    body = orjson.loads(result.output)
    assert body["scheduler"] == "fcfs" and body["clients"] == ["client0", "client1"]
    assert body["throughput_tok_s"] > 800
    assert set(body) >= {"service_rate", "mean_ttft_s", "service_diff_avg", "service_diff_max", "acc_service_diff_max"}


def test_trace_replay(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    rows = [f"{i * 0.5},{'alice' if i % 3 else 'bob'},120,60" for i in range(60)]
    trace.write_text("timestamp_s,client,prompt_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["bench", "fairness", "--trace", str(trace), "--weights", "1,2", "--json"])
    assert result.exit_code == 0, result.output
    body = orjson.loads(result.output)
    assert body["requests"] == 60 and body["weights"] == {"alice": 1.0, "bob": 2.0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "nope"], "unknown suite"),
        (["--scheduler", "rpm:0"], "rpm:N"),
        (["--scheduler", "random"], "unknown scheduler"),
        (["--weights", "1,2,3"], "--weights needs 2"),
        (["--inflight-tokens", "0"], "at least 1"),
    ],
)
def test_bad_options_get_a_clear_message(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["bench", "fairness", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_trace_with_the_wrong_header_is_refused(tmp_path: Path) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text("time,who,p,o\n1,a,1,1\n")
    with pytest.raises(ValueError, match="header must be"):
        load_trace(trace)
