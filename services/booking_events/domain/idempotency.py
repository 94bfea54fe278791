"""Idempotency keys: a retried request gets the first response back instead of a second event."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IdempotencyKey:
    client: str  # digest of the caller's API key
    key: str
    fingerprint: str  # of the request the key was sent with


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status_code: int
    body: dict[str, Any]


class IdempotencyKeyReused(Exception):
    """The idempotency key was first used with a different request."""


def client_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """sha256 of method, path and body; JSON bodies are canonicalised so whitespace doesn't count."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def replay(stored: StoredResponse, key: IdempotencyKey) -> StoredResponse:
    """The stored response, if it answered this same request; a reused key for another is refused."""
    if stored.fingerprint != key.fingerprint:
        raise IdempotencyKeyReused(key.key)
    return stored
