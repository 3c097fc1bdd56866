"""search.hygiene: the single definition of a secret (redaction and the scoring gate)."""

from __future__ import annotations

import pytest

from search.hygiene import REDACTED, is_secret_key, looks_like_secret_value, redact


@pytest.mark.parametrize("key", ["token", "hf_token", "HF_TOKEN", "apiKey", "api_key",
                                 "AWS_SECRET_ACCESS_KEY", "aws_access_key_id", "db_password",
                                 "client_secret", "credentials", "wandb.api-key", "auth",
                                 "privateKey", "passwd"])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["lr", "max_tokens", "tokenizer", "num_tokens", "author",
                                 "key_dim", "keyboard", "passes", "secretary_bird_count"])
def test_ordinary_keys(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize("value", [
    "AKIAIOSFODNN7EXAMPLE", "ghp_" + "a" * 36, "hf_" + "Ab1" * 11, "sk-" + "x" * 32,
    "xoxb-1234567890-abcdef", "AIza" + "A" * 35,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE", b"AKIAIOSFODNN7EXAMPLE"])
def test_secret_values(value):
    assert looks_like_secret_value(value)


@pytest.mark.parametrize("value", ["adam", "/data/train.csv", 0.001, None, True,
                                   "sk-short", "a" * 64, b"\xff\xfe"])
def test_ordinary_values(value):
    assert not looks_like_secret_value(value)


def test_redact_recurses_without_mutating():
    cfg = {"lr": 0.1, "creds": {"user": "u", "pw": "p"}, "opt": {"name": "adam",
           "hf_token": "x"}, "paths": ["a", "ghp_" + "b" * 36], "note": "AKIAIOSFODNN7EXAMPLE"}
    out = redact(cfg)
    assert out == {"lr": 0.1, "creds": REDACTED, "opt": {"name": "adam", "hf_token": REDACTED},
                   "paths": ["a", REDACTED], "note": REDACTED}
    assert cfg["opt"]["hf_token"] == "x"  # input untouched
