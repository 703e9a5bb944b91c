"""The secret box: its keys' form checked at start, its cipher loaded at the first seal or open."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from tenantgate.access.secret_box import SecretBox, is_fernet_key, new_key
from tenantgate.errors import ConfigurationError

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
OTHER = base64.urlsafe_b64encode(bytes(range(1, 33))).decode()


@pytest.mark.parametrize(
    "keys",
    [[], ["not a key"], [KEY[:-4]], [base64.urlsafe_b64encode(bytes(31)).decode()], [KEY, "é" * 44]],
)
def test_keys_that_are_not_fernet_keys_stop_the_start_with_the_setting_named(keys: list[str]) -> None:
    with pytest.raises(ConfigurationError, match="TENANTGATE_SECRET_KEY must be Fernet keys"):
        SecretBox(keys)


def test_the_first_key_seals_and_every_key_opens() -> None:
    old, rotated = SecretBox([OTHER]), SecretBox([KEY, OTHER])
    assert rotated.open(old.seal("sk-upstream")) == "sk-upstream"
    with pytest.raises(ConfigurationError, match="cannot be decrypted"):
        old.open(rotated.seal("sk-new"))
    assert rotated.open_config_value(rotated.seal_for_config("sk-2"), "x") == "sk-2"
    assert rotated.open_config_value("sk-plain", "x") == "sk-plain"
    with pytest.raises(ConfigurationError, match=r"deployments\.a\.api_key is sealed, but not with"):
        old.open_config_value(rotated.seal_for_config("sk-3"), "deployments.a.api_key")
    assert is_fernet_key(KEY)


def test_a_key_kept_in_the_data_directory_is_made_once(tmp_path: Path) -> None:
    first = SecretBox.from_settings(None, tmp_path)
    assert SecretBox.from_settings(None, tmp_path).open(first.seal("kept")) == "kept"


def test_the_cipher_library_loads_at_the_first_seal_not_before() -> None:
    probe = (
        "import sys; from tenantgate.access.secret_box import SecretBox; "
        f"box = SecretBox.from_settings({KEY + ',' + OTHER!r}, None); before = 'cryptography' in sys.modules; "
        "box.open(box.seal('x')); print(before, 'cryptography' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_a_new_key_is_one_fernet_takes_and_never_the_same() -> None:
    from cryptography.fernet import Fernet

    key = new_key()
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"y")) == b"y"
    assert key != new_key()
