"""What counts as a secret in a trial config, and how it is redacted (pure, no deps).

Single definition used by the tracker (redaction before anything reaches MLflow) and by the
scoring core (a secret-looking param sets the hygiene penalty to 1 and gates the trial).

* A **key** looks secret when one of its words (split on ``_ - . /`` and camelCase) is token,
  secret, password, passwd, pwd, passphrase, credential(s), creds, apikey, auth, or when two adjacent
  words form api/access/private/secret/auth + key. Word matching keeps ``max_tokens`` and
  ``tokenizer`` clean while ``hf_token``, ``apiKey`` and ``AWS_SECRET_ACCESS_KEY`` are caught.
* A **value** looks secret when it is a string shaped like a known credential: AWS access key
  ids, GitHub / Slack / Hugging Face / OpenAI-style / Google API keys, JWTs, PEM private keys,
  and the redaction marker itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

REDACTED = "***REDACTED***"

_WORDS = frozenset({
    "token", "secret", "secrets", "password", "passwd", "pwd", "passphrase", "credential",
    "credentials", "creds", "apikey", "auth", "privatekey", "accesskey", "secretkey",
})
_KEY_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"),
                        ("secret", "key"), ("auth", "key"), ("client", "secret")})
_SPLIT = re.compile(r"[^0-9a-zA-Z]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

_VALUE_PATTERNS = tuple(re.compile(p) for p in (
    r"^(AKIA|ASIA)[0-9A-Z]{16}$",                       # AWS access key id
    r"^gh[pousr]_[A-Za-z0-9]{30,}$",                    # GitHub tokens
    r"^github_pat_[A-Za-z0-9_]{40,}$",
    r"^xox[abposr]-[A-Za-z0-9-]{10,}$",                 # Slack
    r"^hf_[A-Za-z0-9]{30,}$",                           # Hugging Face
    r"^sk-[A-Za-z0-9_-]{20,}$",                         # OpenAI-style secret keys
    r"^AIza[0-9A-Za-z_-]{35}$",                         # Google API key
    r"^eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+$",  # JWT
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",              # PEM private key
))


def _words(key: str) -> list[str]:
    return [w.lower() for part in _SPLIT.split(str(key)) for w in _CAMEL.split(part) if w]


def is_secret_key(key: Any) -> bool:
    """True when the key name (any nesting level's name, or a dotted path) looks secret."""
    words = _words(str(key))
    if any(w in _WORDS for w in words):
        return True
    return any((a, b) in _KEY_PAIRS for a, b in pairwise(words))


def looks_like_secret_value(value: Any) -> bool:
    """True when ``value`` is a string shaped like a known access key or token."""
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return False
    if not isinstance(value, str):
        return False
    s = value.strip()
    # The redaction marker stands for a secret that was there: a config restored from redacted
    # state still counts as carrying one.
    return s == REDACTED or any(p.search(s) for p in _VALUE_PATTERNS)


def redact(params: Any) -> Any:
    """Return a copy of ``params`` with secret-looking entries replaced by :data:`REDACTED`.

    Recurses into mappings, lists and tuples; a value (a whole sub-mapping included) is
    redacted when its key looks secret or the value itself looks like a credential. The input
    is not mutated.
    """
    if isinstance(params, Mapping):
        return {k: (REDACTED if is_secret_key(k) or looks_like_secret_value(v) else redact(v))
                for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return type(params)(REDACTED if looks_like_secret_value(v) else redact(v) for v in params)
    return params
