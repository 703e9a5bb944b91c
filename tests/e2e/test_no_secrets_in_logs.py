"""Keys, tokens, passwords and prompts never reach the logs or the error messages, on the paths
that succeed and on those that fail."""

from __future__ import annotations

import secrets

import httpx

from tests.e2e.procs import Gateway


def test_secrets_and_prompts_stay_out_of_logs_and_errors(gw: Gateway) -> None:
    key = gw.tenant_with_key("quiet-logs")
    prompt = f"my secret prompt {secrets.token_hex(8)}"
    wrong_key = key[:-6] + "AAAAAA"
    password = f"pw-{secrets.token_hex(12)}"
    with gw.admin() as admin:
        user = admin.post("/api/v1/tenants/quiet-logs/users", json={"email": "q@quiet.example"}).json()
        token = admin.post(f"/api/v1/tenants/quiet-logs/users/{user['id']}/tokens", json={}).json()["token"]
        admin.put(f"/api/v1/tenants/quiet-logs/users/{user['id']}/password", json={"password": password})
    answers = []
    for sent_key, body in (
        (key, {"model": "sim-small", "messages": [{"role": "user", "content": prompt}], "max_tokens": 3}),
        (key, {"model": "sim-broken", "messages": [{"role": "user", "content": prompt}]}),  # upstream fails
        (key, {"model": "no-such-model", "messages": [{"role": "user", "content": prompt}]}),
        (key, {"model": "sim-small", "messages": prompt}),  # malformed
        (wrong_key, {"model": "sim-small", "messages": [{"role": "user", "content": prompt}]}),
    ):
        headers = {"Authorization": f"Bearer {sent_key}"}
        answers.append(httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=30).text)
    answers.append(httpx.get(gw.url + "/api/v1/me", headers={"Authorization": f"Bearer {token[:-4]}xxxx"}).text)
    answers.append(httpx.get(gw.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}).text)
    login = {"tenant": "quiet-logs", "email": "q@quiet.example", "password": password + "x"}
    answers.append(httpx.post(gw.url + "/api/v1/login", json=login).text)
    assert gw.log is not None
    logged = gw.log.read_text()
    secret_key, secret_token = key.split("-", 2)[2], token.split("-", 2)[2]
    for leaked in (secret_key, wrong_key.split("-", 2)[2], secret_token, password, prompt):
        assert leaked not in logged
        assert all(leaked not in answer for answer in answers)
