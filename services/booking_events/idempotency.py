"""Idempotency keys: a retried request gets the first response back instead of a second event."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.booking_events.tables import idempotency_keys
from shared.database import insert_ignoring_duplicates


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


async def find_response(engine: AsyncEngine, key: IdempotencyKey) -> StoredResponse | None:
    statement = select(idempotency_keys).where(
        idempotency_keys.c.client == key.client, idempotency_keys.c.key == key.key
    )
    async with engine.connect() as connection:
        row = (await connection.execute(statement)).one_or_none()
    if row is None:
        return None
    return StoredResponse(row.fingerprint, row.status_code, json.loads(row.response_body))


async def remember_response(
    connection: AsyncConnection,
    key: IdempotencyKey,
    status_code: int,
    body: dict[str, Any],
    now: datetime,
) -> bool:
    """Store the response in the caller's transaction; False when another request stored one first."""
    statement = insert_ignoring_duplicates(connection.dialect.name, idempotency_keys).values(
        client=key.client,
        key=key.key,
        fingerprint=key.fingerprint,
        status_code=status_code,
        response_body=json.dumps(body),
        created_at=now,
    )
    result = await connection.execute(statement)
    return result.rowcount == 1


async def forget_responses_before(engine: AsyncEngine, cutoff: datetime) -> int:
    async with engine.begin() as connection:
        result = await connection.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff)
        )
    return max(result.rowcount, 0)
