from tenantgate.auth.keys import hash_secret, issue_key, parse_key, secret_matches


def test_issued_key_parses_back_and_only_the_hash_matches() -> None:
    issued = issue_key()
    assert issued.plaintext.startswith(f"tg-{issued.id}-")
    parsed = parse_key(issued.plaintext)
    assert parsed is not None
    key_id, secret = parsed
    assert key_id == issued.id
    assert issued.secret_hash == hash_secret(secret) and secret not in issued.secret_hash
    assert secret_matches(secret, issued.secret_hash)
    assert not secret_matches(secret + "x", issued.secret_hash)


def test_secrets_may_contain_dashes() -> None:
    assert parse_key("tg-0123456789ab-abc-def") == ("0123456789ab", "abc-def")


def test_malformed_keys_are_rejected() -> None:
    for token in ["", "sk-0123456789ab-secret", "tg-short-secret", "tg-0123456789ab-", "tg", "tg-0123456789ab"]:
        assert parse_key(token) is None, token
