"""Private prompt templates: created and versioned through the API and the CLI, used by name from a
chat request with its variables, found only inside their tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.procs import Gateway

HI: Any = [{"role": "user", "content": "hi"}]  # 1 word + 3 = 4 prompt tokens under the sim engine's rule


def chat(gw: Gateway, key: str, template: dict[str, Any], messages: Any = HI) -> openai.types.chat.ChatCompletion:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as sdk:
        return sdk.chat.completions.create(model="sim-small", messages=messages, max_tokens=2,
                                           extra_body={"template": template})  # fmt: skip


def test_a_template_is_versioned_filled_in_and_private(gw: Gateway, tmp_path: Path) -> None:
    key, stranger = gw.tenant_with_key("templated"), gw.tenant_with_key("not-templated")
    first = tmp_path / "support.yaml"
    first.write_text("- role: system\n  content: You support {{product}}.\n")
    assert gw.cli("templates", "create", "--tenant", "templated", "--name", "support", "-f", str(first)).startswith(
        "template support version 1"
    )
    with gw.admin() as admin:
        second = {
            "name": "support",
            "messages": [{"role": "system", "content": "You support {{ product }} in {{lang}}."}],
        }
        made = admin.post("/api/v1/tenants/templated/templates", json=second)
        assert made.status_code == 201 and made.json()["version"] == 2
        assert [t["version"] for t in admin.get("/api/v1/tenants/templated/templates/support").json()] == [1, 2]
        audit = admin.get("/api/v1/tenants/templated/audit").json()
        assert [e["target"] for e in audit if e["action"] == "template.create"] == [
            "template support v2",
            "template support v1",
        ]
    variables = {"product": "Gizmo", "lang": "French"}
    latest = chat(gw, key, {"name": "support", "variables": variables})
    assert latest.usage is not None and latest.usage.prompt_tokens == 8 + 4  # "You support Gizmo in French." + hi
    pinned = chat(gw, key, {"name": "support", "version": 1, "variables": variables})
    assert pinned.usage is not None and pinned.usage.prompt_tokens == 6 + 4
    alone = chat(gw, key, {"name": "support", "variables": variables}, messages=[])
    assert alone.usage is not None and alone.usage.prompt_tokens == 8  # the template's messages only
    with pytest.raises(openai.BadRequestError) as missing:
        chat(gw, key, {"name": "support", "variables": {"product": "Gizmo"}})
    assert "needs the variable 'lang'" in str(missing.value)
    with pytest.raises(openai.NotFoundError) as elsewhere:
        chat(gw, stranger, {"name": "support", "variables": variables})  # another tenant's template: not found
    assert elsewhere.value.code == "template_not_found"
    with pytest.raises(openai.NotFoundError):
        chat(gw, key, {"name": "support", "version": 9, "variables": variables})


def test_a_wrong_template_is_refused_clearly(gw: Gateway) -> None:
    gw.tenant_with_key("templated-wrong")
    with gw.admin() as admin:
        wrong = [{"name": "Bad Name", "messages": [{"role": "user", "content": "x"}]}, {"name": "ok", "messages": []},
                 {"name": "ok", "messages": [{"role": "tool", "content": "x"}]}]  # fmt: skip
        for body in wrong:
            refused = admin.post("/api/v1/tenants/templated-wrong/templates", json=body)
            assert refused.status_code in (400, 422) and "error" in refused.json()
        assert admin.get("/api/v1/tenants/templated-wrong/templates/none").status_code == 404


def test_a_deleted_version_is_gone_and_its_number_not_reused(gw: Gateway, tmp_path: Path) -> None:
    key = gw.tenant_with_key("template-pruner")
    with gw.admin() as admin:
        for n in (1, 2):
            body = {"name": "greet", "messages": [{"role": "system", "content": f"Greeting {n} for {{{{who}}}}."}]}
            assert admin.post("/api/v1/tenants/template-pruner/templates", json=body).status_code == 201
    assert gw.cli("templates", "delete", "--tenant", "template-pruner", "--name", "greet", "--version", "2") == (
        "deleted version 2 of template greet\n"
    )
    with pytest.raises(openai.NotFoundError):
        chat(gw, key, {"name": "greet", "version": 2, "variables": {"who": "Ann"}})
    latest = chat(gw, key, {"name": "greet", "variables": {"who": "Ann"}})  # the latest left: version 1
    assert latest.usage is not None and latest.usage.prompt_tokens == 7 + 4  # "Greeting 1 for Ann." + hi
    with gw.admin() as admin:
        again = admin.delete("/api/v1/tenants/template-pruner/templates/greet/versions/2")
        assert again.status_code == 404 and again.json()["error"]["code"] == "template_not_found"
        body = {"name": "greet", "messages": [{"role": "system", "content": "Greeting 3."}]}
        assert admin.post("/api/v1/tenants/template-pruner/templates", json=body).json()["version"] == 3
        listed = admin.get("/api/v1/tenants/template-pruner/templates/greet").json()
        actions = [e["action"] for e in admin.get("/api/v1/tenants/template-pruner/audit").json()]
    assert [t["version"] for t in listed] == [1, 3] and "template.delete" in actions
