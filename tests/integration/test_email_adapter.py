"""SmtpEmailSender against a real SMTP server on loopback (the sandbox sink)."""
from __future__ import annotations

import dataclasses
import email.message
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from sandbox.smtp_sink import ReceivedMail, SmtpSink
from shared.channels.email import SmtpEmailSender
from shared.channels.messages import (
    Attachment,
    EmailMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)

CLINIC = "Queen West Sports Clinic <appointments@clinic.example>"
INVITE = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//clinic-notify//EN\r\nMETHOD:REQUEST\r\n"
    b"BEGIN:VEVENT\r\nUID:appt-42@clinic.example\r\nDTSTART:20300114T150000Z\r\n"
    b"SUMMARY:Rendez-vous \xc3\xa0 la clinique\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture
async def sender(sink: SmtpSink) -> AsyncIterator[SmtpEmailSender]:
    sink.clear()
    smtp = SmtpEmailSender("127.0.0.1", sink.port, CLINIC, timeout=5.0)
    yield smtp
    await smtp.close()


def appointment_email(**overrides: Any) -> EmailMessage:
    email = EmailMessage(
        to="patient@example.org",
        subject="Your appointment on Tuesday",
        text="See you Tuesday at 10:00. Arrivez 10 minutes à l'avance.",
        html="<p>See you <b>Tuesday</b> at 10:00.</p>",
        attachments=(
            Attachment("appointment.ics", INVITE, "text/calendar; method=REQUEST; charset=UTF-8"),
        ),
        headers={"List-Unsubscribe": "<https://clinic.example/u/abc>"},
    )
    return dataclasses.replace(email, **overrides)


def by_id(message_id: str) -> Callable[[ReceivedMail], bool]:
    return lambda mail: mail.message["Message-ID"] == message_id


async def test_an_invitation_arrives_with_text_html_and_calendar_intact(
    sender: SmtpEmailSender, sink: SmtpSink
) -> None:
    message_id = await sender.send(appointment_email())

    mail = sink.wait_for(by_id(message_id))
    received = mail.message
    assert mail.recipients == ("patient@example.org",)
    assert mail.mail_from == "appointments@clinic.example"
    assert received["From"] == CLINIC
    assert received["Subject"] == "Your appointment on Tuesday"
    assert received["List-Unsubscribe"] == "<https://clinic.example/u/abc>"
    assert received["Date"] is not None
    assert received.get_content_type() == "multipart/mixed"

    body = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    assert body is not None and html is not None
    assert body.get_content().strip() == "See you Tuesday at 10:00. Arrivez 10 minutes à l'avance."
    assert "<b>Tuesday</b>" in html.get_content()

    (calendar,) = list(received.iter_attachments())
    assert isinstance(calendar, email.message.EmailMessage)
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_content_charset() == "utf-8"
    assert calendar.get_filename() == "appointment.ics"
    assert calendar.get_payload(decode=True) == INVITE


@pytest.mark.parametrize("subject", [
    "Escalation 4821 not acknowledged: shortness of breath (red flag) – Alex Tremblay, 8/10",
    "Votre rendez-vous du 3 déc. 2026 est confirmé — merci de votre confiance",
])
async def test_a_long_subject_arrives_exactly_as_written(
    sender: SmtpEmailSender, sink: SmtpSink, subject: str
) -> None:
    message_id = await sender.send(appointment_email(subject=subject))

    assert sink.wait_for(by_id(message_id)).message["Subject"] == subject


async def test_french_text_and_a_french_sender_name_arrive_intact(sink: SmtpSink) -> None:
    text = "Bonjour Amélie,\n\nVotre séance de physiothérapie est jeudi à 10 h 00.\n" + "Très bien. " * 20 + "\n"
    smtp = SmtpEmailSender("127.0.0.1", sink.port, "Clinique Santé Québec <rdv@clinic.example>", timeout=5.0)
    try:
        message_id = await smtp.send(appointment_email(text=text, html="<p>À jeudi, l’équipe</p>"))
    finally:
        await smtp.close()

    mail = sink.wait_for(by_id(message_id))
    assert mail.message["From"] == "Clinique Santé Québec <rdv@clinic.example>"
    assert mail.body().replace("\r\n", "\n") == text  # SMTP carries every line end as CRLF
    assert "À jeudi, l’équipe" in mail.body("html")
    assert max(len(line) for line in mail.raw.splitlines()) <= 998


async def test_a_picture_the_html_shows_travels_with_the_html(sender: SmtpEmailSender, sink: SmtpSink) -> None:
    picture = bytes(range(256)) * 8
    message_id = await sender.send(appointment_email(
        html='<p>Your scores</p><img src="cid:chart@clinic.example">',
        attachments=(Attachment("chart.png", picture, "image/png", content_id="chart@clinic.example"),
                     *appointment_email().attachments),
    ))

    received = sink.wait_for(by_id(message_id)).message
    [image] = [part for part in received.walk() if part["Content-ID"] == "<chart@clinic.example>"]
    assert image.get_content_type() == "image/png" and image.get_content_disposition() == "inline"
    assert image.get_payload(decode=True) == picture
    [related] = [part for part in received.walk() if part.get_content_type() == "multipart/related"]
    assert [part.get_content_type() for part in related.iter_parts()] == ["text/html", "image/png"]
    assert [part.get_filename() for part in received.iter_attachments()] == ["appointment.ics"]


async def test_a_line_break_cannot_be_slipped_into_a_header(sender: SmtpEmailSender, sink: SmtpSink) -> None:
    with pytest.raises(ValueError):
        await sender.send(appointment_email(subject="Hello\r\nBcc: someone@example.org"))
    with pytest.raises(ValueError):
        await sender.send(appointment_email(headers={"List-Unsubscribe": "<https://x.example>\nBcc: a@b.c"}))
    assert sink.messages == []


async def test_the_message_id_given_by_the_caller_is_used_and_returned(
    sender: SmtpEmailSender, sink: SmtpSink
) -> None:
    message_id = await sender.send(appointment_email(message_id="<appt-42.reminder@clinic.example>"))

    assert message_id == "<appt-42.reminder@clinic.example>"
    sink.wait_for(by_id(message_id))


async def test_one_connection_carries_several_messages(
    sender: SmtpEmailSender, sink: SmtpSink
) -> None:
    ids = [await sender.send(appointment_email(attachments=())) for _ in range(3)]

    assert len(set(ids)) == 3
    for message_id in ids:
        sink.wait_for(by_id(message_id))


async def test_the_sender_reconnects_after_the_server_restarts(
    sender: SmtpEmailSender, sink: SmtpSink
) -> None:
    await sender.send(appointment_email())
    # The restart blocks this loop, so the sender only learns of the dropped
    # connection when it writes to it: the reconnect-once path.
    sink.stop()
    sink.start()

    message_id = await sender.send(appointment_email())

    sink.wait_for(by_id(message_id))


async def test_a_451_reply_is_transient(sender: SmtpEmailSender, sink: SmtpSink) -> None:
    sink.fail_next(1, code=451, message="Mailbox busy")

    with pytest.raises(TransientDeliveryError) as failure:
        await sender.send(appointment_email())

    assert failure.value.code == "451"
    # The connection stays usable after a refused DATA.
    message_id = await sender.send(appointment_email())
    sink.wait_for(by_id(message_id))


async def test_a_550_reply_is_permanent(sender: SmtpEmailSender, sink: SmtpSink) -> None:
    sink.fail_next(1, code=550, message="Mailbox unavailable")

    with pytest.raises(PermanentDeliveryError) as failure:
        await sender.send(appointment_email())

    assert failure.value.code == "550"


async def test_no_server_listening_is_transient(sink: SmtpSink) -> None:
    nowhere = SmtpSink()  # a free port that nothing listens on
    smtp = SmtpEmailSender("127.0.0.1", nowhere.port, CLINIC, timeout=2.0)

    with pytest.raises(TransientDeliveryError) as failure:
        await smtp.send(appointment_email())

    assert failure.value.code is None
    await smtp.close()


async def test_headers_the_sender_owns_cannot_be_overridden(sender: SmtpEmailSender) -> None:
    with pytest.raises(ValueError):
        await sender.send(appointment_email(headers={"Message-ID": "<x@y>"}))


async def test_a_pool_of_connections_sends_to_a_slow_server_in_parallel() -> None:
    import asyncio
    import time

    with SmtpSink(delay=0.5) as slow:  # a server taking half a second over each message
        smtp = SmtpEmailSender("127.0.0.1", slow.port, CLINIC, timeout=5.0, pool_size=4)
        try:
            started = time.monotonic()
            await asyncio.gather(*(smtp.send(appointment_email(to=f"p{i}@example.org")) for i in range(8)))
            elapsed = time.monotonic() - started
        finally:
            await smtp.close()
        assert len(slow.messages) == 8
    # One connection would take 8 x 0.5 s = 4 s.
    assert elapsed < 2.5


async def test_a_pooled_connection_the_server_dropped_is_reopened(sink: SmtpSink) -> None:
    smtp = SmtpEmailSender("127.0.0.1", sink.port, CLINIC, timeout=5.0, pool_size=1)
    try:
        first = await smtp.send(appointment_email())
        sink.stop()
        sink.start()  # the server went away and came back: the open connection is dead
        second = await smtp.send(appointment_email())
    finally:
        await smtp.close()
    sink.wait_for(by_id(first))
    sink.wait_for(by_id(second))


async def test_refused_credentials_are_an_account_wide_failure(sink: SmtpSink, sender: SmtpEmailSender) -> None:
    from shared.channels.messages import ChannelUnavailableError

    sink.fail_next(1, code=535, message="Authentication credentials invalid")
    with pytest.raises(ChannelUnavailableError) as failure:
        await sender.send(appointment_email())
    assert failure.value.code == "535"
