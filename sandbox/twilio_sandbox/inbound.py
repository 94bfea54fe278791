"""Simulate a patient's text reaching our webhook the way Twilio delivers it."""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import httpx
from twilio.request_validator import RequestValidator

from sandbox.twilio_sandbox.payloads import API_VERSION, new_sid, num_segments


@dataclass(frozen=True)
class TwimlReply:
    to: str | None
    from_: str | None
    body: str


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    text: str


def inbound_params(
    account_sid: str, from_: str, to: str, body: str, opt_out_type: str | None
) -> dict[str, str]:
    """The form fields of Twilio's incoming-message webhook."""
    sid = new_sid("SM")
    params = {
        "ToCountry": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "FromCountry": "CA",
        "To": to,
        "NumSegments": str(num_segments(body)),
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }
    if opt_out_type is not None:
        params["OptOutType"] = opt_out_type
    return params


def signature(auth_token: str, url: str, params: dict[str, str], valid: bool) -> str:
    if valid:
        return RequestValidator(auth_token).compute_signature(url, params)
    return RequestValidator(auth_token + "-wrong").compute_signature(url, params)


async def post_to_webhook(url: str, params: dict[str, str], signed: str) -> WebhookAnswer:
    headers = {"X-Twilio-Signature": signed, "User-Agent": "TwilioProxy/1.1"}
    async with httpx.AsyncClient(timeout=15.0) as client:
        response = await client.post(url, data=params, headers=headers)
    return WebhookAnswer(status=response.status_code, text=response.text)


def twiml_replies(text: str) -> list[TwimlReply]:
    """The <Message> verbs of a TwiML answer; anything that is not TwiML yields none."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return []
    if root.tag != "Response":
        return []
    replies = []
    for verb in root.iter("Message"):
        body_element = verb.find("Body")
        body = body_element.text if body_element is not None else verb.text
        replies.append(TwimlReply(to=verb.get("to"), from_=verb.get("from"), body=(body or "").strip()))
    return replies
