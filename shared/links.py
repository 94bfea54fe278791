"""Signed links a patient can follow without logging in: unsubscribe, soreness scores."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

UNSUBSCRIBE_VALIDITY = timedelta(days=90)  # CASL asks for at least 60 days
SCORE_LINK_VALIDITY = timedelta(days=7)


class InvalidLink(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PatientLinks:
    base_url: str
    secret: str

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=f"clinic-notify:{purpose}")

    def sign(self, purpose: str, payload: dict[str, Any]) -> str:
        return self._serializer(purpose).dumps(payload)

    def read(self, purpose: str, token: str, max_age: timedelta) -> dict[str, Any]:
        try:
            return self._serializer(purpose).loads(token, max_age=int(max_age.total_seconds()))
        except SignatureExpired:
            raise InvalidLink("expired") from None
        except BadSignature:
            raise InvalidLink("invalid") from None

    def unsubscribe_url(self, channel: str, address: str, locale: str = "en-CA") -> str:
        token = self.sign("unsubscribe", {"channel": channel, "address": address, "locale": locale})
        return f"{self.base_url.rstrip('/')}/unsubscribe/{token}"

    def check_in_url(self, check_in_id: str) -> str:
        token = self.sign("check-in", {"check_in": check_in_id})
        return f"{self.base_url.rstrip('/')}/check-in/{token}"

    def score_urls(self, check_in_id: str) -> list[dict[str, Any]]:
        base = self.base_url.rstrip("/")
        return [
            {"score": score, "url": f"{base}/check-in/{self.sign('check-in', {'check_in': check_in_id, 'score': score})}"}
            for score in range(11)
        ]
