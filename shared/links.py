"""Links a patient can follow without logging in: unsubscribe, soreness scores.

The token is encrypted as well as signed (Fernet): an address inside an unsubscribe link must not be
readable by whoever sees the URL (proxies, browser history, mail scanners).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

UNSUBSCRIBE_VALIDITY = timedelta(days=90)  # CASL asks for at least 60 days
SCORE_LINK_VALIDITY = timedelta(days=7)


@functools.lru_cache(maxsize=32)
def _fernet(secret: str, purpose: str) -> Fernet:
    """One key per purpose: a score token can never be replayed as an unsubscribe token. Made once per
    secret and purpose: a check-in email carries eleven score links, each message an unsubscribe link."""
    digest = hashlib.sha256(f"clinic-notify:{purpose}:{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class InvalidLink(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PatientLinks:
    base_url: str
    secret: str

    def _fernet(self, purpose: str) -> Fernet:
        return _fernet(self.secret, purpose)

    def encrypt_token(self, purpose: str, payload: dict[str, Any], issued_at: datetime | None = None) -> str:
        data = json.dumps(payload, separators=(",", ":")).encode()
        moment = int(issued_at.timestamp()) if issued_at else int(time.time())
        return self._fernet(purpose).encrypt_at_time(data, moment).decode()

    def decrypt_token(self, purpose: str, token: str, max_age: timedelta) -> dict[str, Any]:
        fernet = self._fernet(purpose)
        try:
            data = fernet.decrypt(token.encode())
            issued = fernet.extract_timestamp(token.encode())
        except (InvalidToken, ValueError):
            raise InvalidLink("invalid") from None
        if time.time() - issued > max_age.total_seconds():
            raise InvalidLink("expired")
        payload: dict[str, Any] = json.loads(data)
        return payload

    def unsubscribe_url(self, channel: str, address: str, locale: str = "en-CA") -> str:
        token = self.encrypt_token("unsubscribe", {"channel": channel, "address": address, "locale": locale})
        return f"{self.base_url.rstrip('/')}/unsubscribe/{token}"

    def check_in_url(self, check_in_id: str) -> str:
        token = self.encrypt_token("check-in", {"check_in": check_in_id})
        return f"{self.base_url.rstrip('/')}/check-in/{token}"

    def score_urls(self, check_in_id: str) -> list[dict[str, Any]]:
        base = self.base_url.rstrip("/")
        urls = []
        for score in range(11):
            token = self.encrypt_token("check-in", {"check_in": check_in_id, "score": score})
            urls.append({"score": score, "url": f"{base}/check-in/{token}"})
        return urls
