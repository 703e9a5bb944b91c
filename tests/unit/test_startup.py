"""`serve` with a mistake in its configuration or an unreachable database: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenantgate.access.login import AttemptLimiter
from tenantgate.cli.main import app, hoisted
from tenantgate.errors import RateLimited
from tenantgate.settings import Settings
from tests.e2e.procs import free_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pools:\n  - name: p\n   deployments: [\n", "line 3, column 4: not valid YAML"),
        (
            "pools:\n  - name: p\n    deployments:\n      - name: d\n        base_url: http://x/v1\n"
            "        max_in_flight: 0\n",
            "pools.0.deployments.0.max_in_flight: Input should be greater than or equal to 1",
        ),
        ("pools: []\nplans: []\nunknown_key: 1\n", "unknown_key: Extra inputs are not permitted"),
    ],
)
def test_a_configuration_mistake_is_one_line_naming_the_file_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "tenantgate.yaml"
    config.write_text(text)
    done = CliRunner().invoke(app, ["serve", "--config", str(config), "--database-url", f"sqlite:///{tmp_path}/db"])
    assert done.exit_code == 2
    [line] = done.output.strip().splitlines()
    assert line.startswith(f"tenantgate: {config}: {expected}")


def test_an_unreachable_database_is_one_line_naming_it_without_its_password(tmp_path: Path) -> None:
    url = "postgresql://postgres:s3cret@127.0.0.1:9/nowhere"  # port 9 (discard): nothing listens there
    done = CliRunner().invoke(app, ["serve", "--database-url", url], env={"TENANTGATE_DATA_DIR": str(tmp_path)})
    assert done.exit_code == 2
    [line] = done.output.strip().splitlines()
    assert line.startswith("tenantgate: cannot use the database postgresql+asyncpg://postgres:***@127.0.0.1:9/nowhere")
    assert "s3cret" not in done.output


def test_global_options_typed_after_the_command_reach_the_command_line() -> None:
    assert hoisted(["keys", "list", "--tenant", "a", "--token", "T", "--url=http://h"]) == [
        "--token", "T", "--url=http://h", "keys", "list", "--tenant", "a",
    ]  # fmt: skip
    assert hoisted(["--url", "U", "whoami"]) == ["--url", "U", "whoami"]
    assert hoisted(["keys", "revoke", "--", "--token"]) == ["keys", "revoke", "--", "--token"]


def test_login_attempts_per_address_are_limited_within_a_minute() -> None:
    limiter = AttemptLimiter(per_minute=3)
    for second in (0.0, 1.0, 2.0):
        limiter.attempt("10.0.0.1", second)
    with pytest.raises(RateLimited) as refused:
        limiter.attempt("10.0.0.1", 3.0)
    assert refused.value.headers["Retry-After"] == "58"
    limiter.attempt("10.0.0.2", 3.0)  # another address has its own budget
    limiter.attempt("10.0.0.1", 60.5)  # the first attempt has left the minute


def test_the_example_configuration_in_the_docs_is_valid() -> None:
    """docs/examples/tenantgate.yaml passes the validation `serve` applies to a configuration file."""
    example = Path(__file__).parents[2] / "docs" / "examples" / "tenantgate.yaml"
    settings = Settings(config=example)
    pools = {pool.name: [d.provider for d in pool.deployments] for pool in settings.catalog.pools}
    assert pools == {"gpu-eu": ["vllm", "vllm", "ollama"], "hosted": ["openai", "anthropic", "azure"]}
    azure = settings.catalog.pools[1].deployments[2]
    assert azure.azure_auth == "entra" and azure.entra is not None
    assert azure.entra.endpoint.startswith("https://login.microsoftonline.com/00000000-")


def test_list_settings_from_the_environment_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTGATE_UPSTREAMS", "http://a:8000/v1/, http://b:8000/v1")
    monkeypatch.setenv("TENANTGATE_ALERT_THRESHOLDS", "90,50")
    monkeypatch.setenv("TENANTGATE_TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.10,2001:db8::/32")
    settings = Settings()
    assert settings.upstreams == ("http://a:8000/v1", "http://b:8000/v1")
    assert settings.alert_thresholds == (50, 90)
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "192.0.2.10/32", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TENANTGATE_TRUSTED_PROXIES", "10.0.0.1/8", "trusted_proxies: Value error, '10.0.0.1/8' is not an IP"),
        ("TENANTGATE_TRUSTED_PROXIES", "balancer.local", "trusted_proxies: Value error, 'balancer.local' is not"),
        ("TENANTGATE_CATALOG", "{not json", 'error parsing value for field "catalog"'),
    ],
)
def test_a_mistaken_environment_variable_is_one_line_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    done = CliRunner().invoke(app, ["serve", "--database-url", f"sqlite:///{tmp_path}/db"])
    assert done.exit_code == 2
    [line] = done.output.strip().splitlines()
    assert line.startswith("tenantgate: settings: ") and expected in line


def test_garbage_collection_pauses_while_serve_imports_and_is_on_when_it_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import uvicorn

    from tenantgate import accepting
    from tenantgate.cli.serve_command import collection_paused

    with pytest.raises(RuntimeError), collection_paused():
        assert not gc.isenabled()
        raise RuntimeError("a start-up that fails")
    assert gc.isenabled()
    seen: list[bool] = []
    servers: list[type] = []

    def run(server: uvicorn.Server, sockets: object = None) -> None:
        seen.append(gc.isenabled())
        servers.append(type(server))
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setenv("TENANTGATE_DATA_DIR", str(tmp_path / "data"))
    port = str(free_port())
    done = CliRunner().invoke(app, ["serve", "--database-url", f"sqlite:///{tmp_path}/db", "--port", port])
    assert done.exit_code == 0 and seen == [True]
    assert servers == [accepting.Server]  # connections are taken in bursts, not one per turn of the loop


@pytest.mark.parametrize(
    ("redis", "flags", "expected"),
    [
        (None, ["--upstream", "http://127.0.0.1:9/v1"], "--workers 2 needs TENANTGATE_REDIS_URL"),
        ("redis://127.0.0.1:6379/0", [], "--workers needs --upstream or --config: each worker would start its own"),
    ],
)
def test_workers_without_what_they_need_are_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis: str | None, flags: list[str], expected: str
) -> None:
    if redis is not None:
        monkeypatch.setenv("TENANTGATE_REDIS_URL", redis)
    monkeypatch.setenv("TENANTGATE_DATA_DIR", str(tmp_path / "data"))
    done = CliRunner().invoke(app, ["serve", "--workers", "2", "--database-url", f"sqlite:///{tmp_path}/db", *flags])
    assert done.exit_code == 2
    [line] = done.output.strip().splitlines()
    assert line.startswith("tenantgate: ") and expected in line


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str) -> None:
    import socket

    monkeypatch.setenv("TENANTGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TENANTGATE_REDIS_URL", "redis://127.0.0.1:6379/0")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = CliRunner().invoke(app, [
            "serve", "--workers", workers, "--port", port, "--upstream", "http://127.0.0.1:9/v1",
            "--database-url", f"sqlite:///{tmp_path}/db",
        ])  # fmt: skip
    assert done.exit_code == 2
    [line] = done.output.strip().splitlines()
    assert line == f"tenantgate: cannot listen on 127.0.0.1:{port}: it is in use"


def test_migrate_with_a_mistaken_variable_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTGATE_CATALOG", "{not json")
    done = CliRunner().invoke(app, ["migrate"])
    assert done.exit_code == 2
    [line] = done.output.strip().splitlines()
    assert line.startswith("tenantgate: settings: ") and 'error parsing value for field "catalog"' in line
