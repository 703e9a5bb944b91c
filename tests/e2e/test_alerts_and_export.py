"""Threshold alerts reach the tenant's webhook signed and once; every usage event reaches the
CloudEvents sink even when it fails at first; CLI billing commands answer bad input clearly."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import yaml

from tests.e2e.conftest import Engines
from tests.e2e.hooks_support import receiver
from tests.e2e.procs import ADMIN_TOKEN, gateway
from tests.e2e.test_metering import MESSAGES

PLANS = [
    {"name": "quota", "display_name": "Quota", "daily_tokens": 2000, "rpm": 10000},
    {"name": "payg", "display_name": "Pay as you go", "rpm": 100000, "monthly_fee_usd": 10},
]


def config(tmp: Path, engines: Engines) -> Path:
    path = tmp / "catalog.yaml"
    deployment = {"name": "d1", "base_url": engines.healthy.url + "/v1", "models": ["sim-small"]}
    catalog = {"pools": [{"name": "main", "deployments": [deployment]}], "plans": PLANS,
               "prices": {"sim-small": {"input_per_1m": 1, "output_per_1m": 2}}}  # fmt: skip
    path.write_text(yaml.safe_dump(catalog))
    return path


def test_quota_thresholds_reach_the_tenant_webhook_signed_and_once(engines: Engines, tmp_path: Path) -> None:
    with receiver(fail_first=1) as hook, gateway(tmp_path, "--config", str(config(tmp_path, engines))) as gw:
        key = gw.tenant_with_key("alerted", "--plan", "quota")
        with gw.admin() as admin:
            assert admin.put("/admin/tenants/alerted/webhook", json={"url": "ftp://x"}).status_code == 400
            secret = admin.put("/admin/tenants/alerted/webhook", json={"url": hook.url}).json()["secret"]
        headers = {"Authorization": f"Bearer {key}"}
        chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 100}
        statuses = [httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=headers).status_code
                    for _ in range(40)]  # fmt: skip
        assert 200 in statuses and 429 in statuses  # the 2,000-token day ran out
        kinds = {"daily_tokens_50", "daily_tokens_80", "daily_tokens_100"}
        assert hook.wait_for(lambda: {orjson.loads(b)["kind"] for _, b in hook.received} >= kinds, 20)
        for sent_headers, body in hook.received:
            stamp, digest = (part.split("=", 1)[1] for part in sent_headers["x-tenantgate-signature"].split(","))
            expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(digest, expected)
            assert orjson.loads(body)["tenant"] == "alerted"
        assert hook.seen >= 4  # one refused delivery was retried
        more = [httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=headers) for _ in range(5)]
        assert all(r.status_code == 429 for r in more)
        delivered = [orjson.loads(b)["kind"] for _, b in hook.received]
        assert sorted(delivered) == sorted(kinds)  # each threshold once, however many requests followed


def test_every_usage_event_reaches_the_cloudevents_sink(engines: Engines, tmp_path: Path) -> None:
    with receiver(fail_first=2) as sink:
        env = {"TENANTGATE_USAGE_EXPORT_URL": sink.url, "TENANTGATE_USAGE_EXPORT_EVERY_S": "0.2"}
        with gateway(tmp_path, "--config", str(config(tmp_path, engines)), env=env) as gw:
            key = gw.tenant_with_key("exported", "--plan", "payg")
            chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 3}
            ids = {
                httpx.post(gw.url + "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"})
                .headers["x-request-id"] for _ in range(30)
            }  # fmt: skip

            def exported() -> set[str]:
                return {event["id"] for _, body in sink.received for event in orjson.loads(body)}

            assert sink.wait_for(lambda: exported() >= ids, 30), f"{len(ids - exported())} events never arrived"
            [event] = [e for _, body in sink.received for e in orjson.loads(body) if e["id"] == min(ids)]
            assert event["specversion"] == "1.0" and event["subject"] == "exported"
            assert event["data"]["total_tokens"] == event["data"]["prompt_tokens"] + 3
            assert event["data"]["cost_micros"] == event["data"]["prompt_tokens"] * 1 + 3 * 2
            assert all(h["content-type"] == "application/cloudevents-batch+json" for h, _ in sink.received)
            now = datetime.now(UTC)
            window = [(now + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in (-1, 1)]
            lines = gw.cli("usage-export", "--tenant", "exported", "--from", window[0], "--to", window[1])
            assert {orjson.loads(line)["id"] for line in lines.splitlines()} == ids


def run_cli(gw_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"TENANTGATE_URL": gw_url, "TENANTGATE_ADMIN_TOKEN": ADMIN_TOKEN, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "tenantgate", *args], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_invoice_commands_and_their_bad_input(engines: Engines, tmp_path: Path) -> None:
    with gateway(tmp_path, "--config", str(config(tmp_path, engines))) as gw:
        key = gw.tenant_with_key("billed", "--plan", "payg")
        chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 5}
        for _ in range(3):
            httpx.post(gw.url + "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"})
        month = datetime.now(UTC).strftime("%Y-%m")
        gw.cli("usage", "--tenant", "billed")  # rolls up what was served
        draft = gw.cli_json("invoices", "show", "--tenant", "billed", "--month", month)
        assert isinstance(draft, dict) and draft["status"] == "draft" and draft["open"] is True
        lines = {line["kind"]: line for line in draft["lines"]}
        assert lines["subscription"]["amount_micros"] == 10_000_000 and lines["usage"]["quantity"] != "0"
        csv = gw.cli("invoices", "show", "--tenant", "billed", "--month", month, "--csv")
        assert csv.splitlines()[0] == "id,kind,description,quantity,unit,unit_price_micros,amount_micros"
        credits = gw.cli_json("credits", "grant", "--tenant", "billed", "--amount", "4.5", "--note", "trial")
        assert isinstance(credits, list) and credits[0]["remaining_micros"] == 4_500_000
        again = gw.cli_json("invoices", "show", "--tenant", "billed", "--month", month)
        assert isinstance(again, dict) and again["credits_micros"] == -4_500_000
        for args, message in (
            (("invoices", "finalize", "--tenant", "billed", "--month", month), "has not ended"),
            (("invoices", "show", "--tenant", "billed", "--month", "2026-13"), "not a month"),
            (("invoices", "show", "--tenant", "nobody", "--month", month), "No tenant"),
            (("credits", "grant", "--tenant", "billed", "--amount", "-5"), "amount"),
            (("credits", "grant", "--tenant", "billed", "--amount", "1e30"), "amount"),
            (("credits", "grant", "--tenant", "billed", "--amount", "5", "--expires", "2030-01-01T00:00"), "timezone"),
            (("usage", "--tenant", "billed", "--from", "2026-11-01"), "timezone"),
            (("usage", "--tenant", "billed", "--group-by", "colour"), "group_by"),
            (("invoices", "credit-note", "--tenant", "billed", "--month", month, "--amount", "1", "--reason", "x"),
             "not final"),
        ):  # fmt: skip
            done = run_cli(gw.url, *args)
            assert done.returncode != 0 and message in done.stderr + done.stdout, (args, done.stderr)
            assert "Traceback" not in done.stderr
        margins = gw.cli_json("margins")
        assert isinstance(margins, dict) and {row["tenant"] for row in margins["tenants"]} == {"billed"}
