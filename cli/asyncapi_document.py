"""The AsyncAPI 3.0 document of every Kafka topic the system reads or writes, built from the code.

Payload schemas come from the pydantic event models (their `$defs` become `components/schemas`),
topic names and partition counts from `shared.topics`, consumer groups from the services' settings.
Who sends and who receives each topic is written down here, next to where the code does it.
Pure: builds a dict, reads and writes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.aftercare.settings import AftercareSettings
from services.notifier.settings import NotifierSettings
from shared.events.aftercare import (
    CheckInScheduled,
    ConsentChanged,
    EscalationAcknowledged,
    EscalationExhausted,
    EscalationPaged,
    EscalationRaised,
    NoReplyRecorded,
    ReplyRecorded,
    ScreeningSubmitted,
)
from shared.events.appointment import (
    APPOINTMENT_EVENT_TYPES,
    AppointmentBooked,
    AppointmentDetails,
    AppointmentType,
)
from shared.events.booking_requests import AppointmentConfirmed, ChangeRequested
from shared.events.deliveries import DeliveryStatusChanged
from shared.events.patient import ChannelConsent, PatientContact
from shared.settings import KafkaSettings
from shared.topics import (
    AFTERCARE_ALERTS,
    AFTERCARE_RECORDS,
    ALL_TOPICS,
    APPOINTMENT_REQUESTS,
    APPOINTMENTS,
    APPOINTMENTS_DEAD_LETTER,
    CONSENT,
    CONSENT_DEAD_LETTER,
    DELIVERIES,
    DELIVERIES_DEAD_LETTER,
)

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
SCHEMAS = "#/components/schemas/"
DEAD_LETTER = "DeadLetter"
DEAD_LETTER_REASONS = ("validation_failed", "processing_failed")  # among what shared/consumer.py writes

NOTIFIER_GROUP = str(NotifierSettings.model_fields["group_id"].default)
AFTERCARE_GROUP = str(AftercareSettings.model_fields["group_id"].default)
NOTIFIER_CONSENT_GROUP = f"{NOTIFIER_GROUP}.consent"  # services/notifier/bootstrap.py
AFTERCARE_DELIVERIES_GROUP = f"{AFTERCARE_GROUP}.deliveries"  # services/aftercare/bootstrap.py

SUMMARIES: dict[str, str] = {
    "AppointmentBooked": "An appointment was booked.",
    "AppointmentRescheduled": "An appointment moved to another time; `previous_starts_at` is the time it had.",
    "AppointmentCancelled": "An appointment was cancelled, by the patient or by the clinic.",
    "AppointmentCompleted": "The visit took place; aftercare check-ins are planned from `completed_at`.",
    "AppointmentNoShow": "The patient did not come to the appointment.",
    "ConsentChanged": "A patient opted out of (or back into) a channel; every service stops sending at once.",
    "CheckInScheduled": "An aftercare check-in was planned for a completed visit.",
    "ReplyRecorded": "A patient's answer to a check-in and how it was read (score, red flags, action). "
                     "It holds the reply text: health information.",
    "NoReplyRecorded": "Every check-in of a visit went unanswered.",
    "ScreeningSubmitted": "A patient answered the pre-visit questions (a later submission replaces an earlier "
                          "one); names only the ids of the questions whose answer went to the practitioner.",
    "EscalationRaised": "A worrying answer: the on-call clinician has been alerted.",
    "EscalationPaged": "Nobody acknowledged in time: the next contact of the chain (backup, lead) was paged.",
    "EscalationAcknowledged": "A clinician acknowledged the escalation (by SMS reply or the email link).",
    "EscalationExhausted": "Every contact of the chain was paged and nobody acknowledged.",
    "AppointmentConfirmed": "The patient answered their reminder: they will come.",
    "ChangeRequested": "The patient answered their reminder asking for another time; the front desk was emailed "
                       "and will call them. The appointment is unchanged until the booking system changes it.",
    "DeliveryStatusChanged": "A message moved on: handed to the provider, refused or skipped by the dispatcher, "
                             "or sent, delivered or not delivered as the provider reports. No address, no body.",
}


@dataclass(frozen=True)
class Channel:
    id: str
    topic: str
    key: str
    description: str
    events: tuple[type[BaseModel], ...]  # none: the dead letters of another topic


@dataclass(frozen=True)
class Operation:
    id: str
    action: Literal["send", "receive"]
    channel: str
    by: str
    summary: str
    group_id: str | None = None
    events: tuple[type[BaseModel], ...] | None = None  # None: every message of the channel


APPOINTMENT_KEY = "The appointment id (`appointment_id`), UTF-8: one appointment's events share a partition, in order."
AFTERCARE_KEY = ("The appointment id, UTF-8; `unmatched` for a reply that matched no check-in. "
                 "One visit's records stay in order.")
DELIVERIES_KEY = ("The `appointment_id` of the message, UTF-8 (aftercare's staff pages: `escalation:<id>`): one "
                  "appointment's statuses share a partition, in the order they were recorded.")
DEAD_LETTER_KEY = "The key of the record that could not be processed, unchanged."

CHANNELS = (
    Channel("appointments", APPOINTMENTS, APPOINTMENT_KEY,
            "Every change of an appointment, carrying the whole appointment and patient as they are after it. "
            "Written by the booking API's outbox, or by a booking system straight to Kafka (one of the two per "
            "appointment). `sequence` grows by one with each change of an appointment.",
            APPOINTMENT_EVENT_TYPES),
    Channel("appointmentsDeadLetter", APPOINTMENTS_DEAD_LETTER, DEAD_LETTER_KEY,
            "Appointment events a consumer refused (invalid) or failed on repeatedly, byte for byte, with why "
            "in the `dlq-*` headers. Read with `clinic-notify dead-letters`.", ()),
    Channel("consent", CONSENT, "The address the consent is about: an E.164 phone number or an email address.",
            "Opt-outs and opt-ins (STOP / START by SMS, the unsubscribe link), published by aftercare and "
            "applied by the notifier, so no service sends to an address that opted out.",
            (ConsentChanged,)),
    Channel("consentDeadLetter", CONSENT_DEAD_LETTER, DEAD_LETTER_KEY,
            "Consent changes the notifier refused or failed on repeatedly, with why in the `dlq-*` headers. "
            "Read with `clinic-notify dead-letters --topic clinic.consent.v1.dlq`.", ()),
    Channel("aftercareRecords", AFTERCARE_RECORDS, AFTERCARE_KEY,
            "What aftercare planned and heard: check-ins scheduled, replies and how they were read, silences, "
            "pre-visit screening answers (the flagged question ids only). "
            "For the clinic's own systems: no clinic-notify service reads it. Replies hold health information.",
            (CheckInScheduled, ReplyRecorded, NoReplyRecorded, ScreeningSubmitted)),
    Channel("aftercareAlerts", AFTERCARE_ALERTS, AFTERCARE_KEY,
            "Worrying answers that alerted the on-call clinician, and how each escalation went on: the backup "
            "and the lead paged when nobody acknowledged, the acknowledgement, a chain that ran out. For the "
            "clinic's own systems: no clinic-notify service reads it.",
            (EscalationRaised, EscalationPaged, EscalationAcknowledged, EscalationExhausted)),
    Channel("appointmentRequests", APPOINTMENT_REQUESTS, APPOINTMENT_KEY,
            "What patients ask of the booking system in their answers to a reminder (\"Reply C to confirm or R "
            "to change\"): a confirmation, or a request to change the time. Requests, not changes: the booking "
            "system decides and publishes any change on the appointments channel. An answer repeated is published "
            "once; an unclear answer is asked again and not published. No phone number; at most a 160-character "
            "excerpt of the reply.",
            (AppointmentConfirmed, ChangeRequested)),
    Channel("deliveries", DELIVERIES, DELIVERIES_KEY,
            "What became of each message the notifier and aftercare send: the dispatcher's outcome (`sent`: "
            "the provider accepted it; `failed`; `skipped` and why) and the provider's reports (Twilio's status "
            "callbacks: `sent`, `delivered`, `undelivered`/`failed` with the error code). A message that cannot "
            "reach the patient on its channel names the channel it goes by instead (`fallback_channel`); the "
            "fallback's own events carry `fallback_of`. Cancellations are not published. For the clinic's own "
            "systems, and for aftercare, which reads the notifier's reminder texts among them: a patient's text "
            "is read against the reminder they really got. No addresses, no message bodies.",
            (DeliveryStatusChanged,)),
    Channel("deliveriesDeadLetter", DELIVERIES_DEAD_LETTER, DEAD_LETTER_KEY,
            "Delivery statuses aftercare refused or failed on repeatedly, with why in the `dlq-*` headers. "
            "Read with `clinic-notify dead-letters --topic clinic.deliveries.v1.dlq`.", ()),
)

OPERATIONS = (
    Operation("bookingEventsPublishesAppointmentEvents", "send", "appointments", "booking_events",
              "The booking API stores each accepted change with its event in one transaction; the outbox "
              "relay publishes it (idempotent producer, acks=all)."),
    Operation("bookingSystemPublishesAppointmentEvents", "send", "appointments", "a booking system",
              "A booking system publishing straight to Kafka instead of calling the API: key by appointment "
              "id, keep each appointment's order, raise `sequence` by one per change, set the headers."),
    Operation("notifierReceivesAppointmentEvents", "receive", "appointments", "notifier",
              "Confirmations, notices and the pre-session schedule. An event whose sequence is not newer "
              "than the last applied one changes nothing.", NOTIFIER_GROUP),
    Operation("aftercareReceivesAppointmentEvents", "receive", "appointments", "aftercare",
              "Plans the aftercare check-ins of a completed visit; acknowledges the other events and does "
              "nothing with them.", AFTERCARE_GROUP),
    Operation("notifierDeadLettersAppointmentEvents", "send", "appointmentsDeadLetter", "notifier",
              "An appointment event the notifier refused or failed on repeatedly."),
    Operation("aftercareDeadLettersAppointmentEvents", "send", "appointmentsDeadLetter", "aftercare",
              "An appointment event aftercare refused or failed on repeatedly."),
    Operation("operatorsReadAppointmentDeadLetters", "receive", "appointmentsDeadLetter", "clinic-notify dead-letters",
              "Operators read the newest dead letters without joining a consumer group."),
    Operation("aftercarePublishesConsentChanges", "send", "consent", "aftercare",
              "Through aftercare's outbox, in the transaction that records the opt-out or opt-in."),
    Operation("notifierReceivesConsentChanges", "receive", "consent", "notifier",
              "Adds the address to (or lifts it from) the notifier's suppression list.", NOTIFIER_CONSENT_GROUP),
    Operation("notifierDeadLettersConsentChanges", "send", "consentDeadLetter", "notifier",
              "A consent change the notifier refused or failed on repeatedly."),
    Operation("operatorsReadConsentDeadLetters", "receive", "consentDeadLetter", "clinic-notify dead-letters",
              "Operators read the newest dead letters without joining a consumer group."),
    Operation("aftercarePublishesRecords", "send", "aftercareRecords", "aftercare",
              "Through aftercare's outbox, in the transaction that made the change."),
    Operation("aftercarePublishesAlerts", "send", "aftercareAlerts", "aftercare",
              "Through aftercare's outbox, in the transaction that recorded the worrying answer."),
    Operation("aftercarePublishesAppointmentRequests", "send", "appointmentRequests", "aftercare",
              "Through aftercare's outbox, in the transaction that records the patient's reply."),
    Operation("bookingSystemReceivesAppointmentRequests", "receive", "appointmentRequests", "a booking system",
              "Confirms the appointment or queues the change for the front desk; keyed by appointment id, "
              "so one appointment's requests arrive in order."),
    Operation("notifierPublishesDeliveryStatuses", "send", "deliveries", "notifier",
              "Through the notifier's outbox, in the transaction that records the outcome in its ledger."),
    Operation("aftercarePublishesDeliveryStatuses", "send", "deliveries", "aftercare",
              "Through aftercare's outbox, in the transaction that records the outcome in its ledger."),
    Operation("aftercareReceivesDeliveryStatuses", "receive", "deliveries", "aftercare",
              "Records the notifier's reminder texts sent, and withdraws those the carrier could not deliver; "
              "acknowledges the other statuses and does nothing with them.", AFTERCARE_DELIVERIES_GROUP),
    Operation("aftercareDeadLettersDeliveryStatuses", "send", "deliveriesDeadLetter", "aftercare",
              "A delivery status aftercare refused or failed on repeatedly."),
    Operation("operatorsReadDeliveryDeadLetters", "receive", "deliveriesDeadLetter", "clinic-notify dead-letters",
              "Operators read the newest dead letters without joining a consumer group."),
)


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the system's topics, as a plain dict ready for YAML or JSON."""
    _check_every_topic_has_a_channel()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "clinic-notify events",
            "version": "1",
            "description": (
                "Every Kafka topic clinic-notify reads or writes, event contract v1. Values are JSON "
                "(UTF-8), keys are UTF-8 strings, header values are UTF-8 strings. Generated from the code "
                "by `clinic-notify asyncapi --out docs/asyncapi.yaml`; see docs/INTEGRATION.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap_servers}",
                "protocol": "kafka",
                "description": "The clinic's Kafka cluster; TLS and SASL as KAFKA_SECURITY_PROTOCOL says.",
                "variables": {
                    "bootstrap_servers": {
                        "default": str(KafkaSettings.model_fields["bootstrap_servers"].default),
                        "description": "KAFKA_BOOTSTRAP_SERVERS",
                    },
                },
            },
        },
        "channels": {channel.id: _channel(channel) for channel in CHANNELS},
        "operations": {operation.id: _operation(operation) for operation in OPERATIONS},
        "components": {
            "messages": _messages(),
            "schemas": _schemas(),
        },
    }


def _check_every_topic_has_a_channel() -> None:
    missing = {spec.name for spec in ALL_TOPICS} - {channel.topic for channel in CHANNELS}
    if missing:
        raise LookupError(f"topics without a channel in the AsyncAPI document: {sorted(missing)}")


def _channel(channel: Channel) -> dict[str, Any]:
    [spec] = [spec for spec in ALL_TOPICS if spec.name == channel.topic]
    names = [event.__name__ for event in channel.events] or [DEAD_LETTER]
    retention = f", kept {spec.retention_ms // (24 * 3600 * 1000)} days" if spec.retention_ms else ""
    binding: dict[str, Any] = {"topic": spec.name, "partitions": spec.partitions}
    if spec.retention_ms:
        binding["topicConfiguration"] = {"retention.ms": spec.retention_ms}
    return {
        "address": channel.topic,
        "title": channel.topic,
        "description": (f"{channel.description}\n\nKey: {channel.key}\n\n"
                        f"Partitions: {spec.partitions}{retention}."),
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
        "bindings": {"kafka": {**binding, "bindingVersion": KAFKA_BINDING}},
    }


def _operation(operation: Operation) -> dict[str, Any]:
    [channel] = [channel for channel in CHANNELS if channel.id == operation.channel]
    events = operation.events if operation.events is not None else channel.events
    names = [event.__name__ for event in events] or [DEAD_LETTER]
    document: dict[str, Any] = {
        "action": operation.action,
        "channel": {"$ref": f"#/channels/{channel.id}"},
        "title": f"{operation.by} {operation.action}s {channel.topic}",
        "summary": operation.summary,
        "messages": [{"$ref": f"#/channels/{channel.id}/messages/{name}"} for name in names],
        "tags": [{"name": operation.by}],
    }
    if operation.group_id is not None:
        document["bindings"] = {"kafka": {
            "groupId": {"type": "string", "const": operation.group_id,
                        "description": "The default; the service's *_GROUP_ID setting changes it."},
            "bindingVersion": KAFKA_BINDING,
        }}
    return document


def _messages() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for channel in CHANNELS:
        for event in channel.events:
            name = event.__name__
            messages[name] = {
                "name": name,
                "title": name,
                "summary": SUMMARIES[name],
                "contentType": "application/json",
                "headers": _event_headers(name),
                "payload": {"$ref": f"{SCHEMAS}{name}"},
                "bindings": {"kafka": {"key": {"type": "string", "description": channel.key},
                                       "bindingVersion": KAFKA_BINDING}},
            }
    messages[DEAD_LETTER] = _dead_letter()
    messages["AppointmentBooked"]["examples"] = [_booked_example()]
    return messages


def _event_headers(event_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["event_type", "schema_version", "event_id"],
        "properties": {
            "event_type": {"type": "string", "const": event_type, "description": "The payload's `event_type`."},
            "schema_version": {"type": "string", "const": "1", "description": "The payload's `schema_version`."},
            "event_id": {"type": "string", "format": "uuid", "description": "The payload's `event_id`."},
        },
    }


def _dead_letter() -> dict[str, Any]:
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A record a consumer could not process, its value copied byte for byte; why is in the headers.",
        "description": (
            "`validation_failed`: the value is not a valid event of the topic (it may not even be JSON); "
            "`dlq-detail` names each wrong field and why, never the values. `processing_failed`: a valid "
            "event whose handling failed a few times for a reason retrying cannot fix. A consumer retries "
            "(never dead-letters) while something it needs is unavailable. The `dlq-*` headers are added by the "
            "consumer that gave up."
        ),
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": ["dlq-reason", "dlq-detail", "dlq-source-topic", "dlq-source-partition",
                         "dlq-source-offset", "dlq-consumer-group", "dlq-failed-at"],
            "properties": {
                "dlq-reason": {"type": "string", "examples": list(DEAD_LETTER_REASONS),
                               "description": "Why: a short snake_case word; consumers may add reasons."},
                "dlq-detail": {"type": "string",
                               "description": "Which fields were wrong and why, or the error's type and attempts."},
                "dlq-source-topic": {"type": "string", "description": "The topic the record was read from."},
                "dlq-source-partition": {"type": "string", "pattern": "^[0-9]+$"},
                "dlq-source-offset": {"type": "string", "pattern": "^[0-9]+$"},
                "dlq-consumer-group": {"type": "string", "description": "The group that could not process it."},
                "dlq-failed-at": {"type": "string", "format": "date-time", "description": "ISO 8601, UTC."},
            },
        },
        "payload": {"description": "The original record's value, unchanged (any bytes)."},
        "bindings": {"kafka": {"key": {"type": "string", "description": DEAD_LETTER_KEY},
                               "bindingVersion": KAFKA_BINDING}},
    }


def _schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [event for channel in CHANNELS for event in channel.events]
    _, top = models_json_schema([(model, "validation") for model in models], ref_template=SCHEMAS + "{model}")
    schemas: dict[str, Any] = top["$defs"]
    for event in APPOINTMENT_EVENT_TYPES:
        # The topic's events are told apart by `event_type`: a consumer refuses one without it.
        schema = schemas[event.__name__]
        schema["required"] = ["event_type", *schema["required"]]
    return dict(sorted(schemas.items()))


def _booked_example() -> dict[str, Any]:
    event = AppointmentBooked(
        event_id=UUID("5f0c2b1e-8d3a-4c36-9a55-2f0a1c7e9b10"),
        occurred_at=datetime(2026, 11, 20, 15, 4, 5, tzinfo=UTC),
        appointment_id="apt_20261201_0930_downtown",
        sequence=1,
        location_id="downtown",
        patient=PatientContact(
            patient_id="pt-42", name="Alex Tremblay", email="alex@example.com", phone="+14165550123",
            locale="fr-CA", consent=ChannelConsent(email=True, sms=True),
        ),
        appointment=AppointmentDetails(
            type=AppointmentType.DRY_NEEDLING, starts_at=datetime.fromisoformat("2026-12-01T09:30:00-05:00"),
            duration_minutes=30, practitioner="Sam Lee", location_id="downtown",
        ),
    )
    return {
        "name": "booked",
        "summary": "A dry needling appointment booked for a French-speaking patient who accepts SMS.",
        "headers": {"event_type": event.event_type, "schema_version": str(event.schema_version),
                    "event_id": str(event.event_id)},
        "payload": event.model_dump(mode="json"),
    }
