"""Tables of the aftercare service: check-ins, replies, and the consent audit trail."""
from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

from shared.database import UtcDateTime, schema
from shared.ledger import tables as ledger_tables
from shared.outbox.store import outbox_table

metadata = MetaData()

check_ins = Table(
    "aftercare_check_ins",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("appointment_id", String(100), nullable=False),
    Column("round", Integer, nullable=False),
    Column("rounds", Integer, nullable=False),
    Column("phone", String(20)),
    Column("email", String(320)),
    Column("locale", String(10), nullable=False),
    Column("context", JSON, nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    # a CheckInStatus: scheduled → answered | closed (an earlier answer ended the check-ins) | no_reply
    Column("status", String(20), nullable=False),
    Column("score", Integer),
    Column("note", Text),
    Column("answered_at", UtcDateTime()),
    Column("answered_via", String(10)),
    Column("unreadable_replies", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # Whose plan the check-in belongs to, for the soreness trajectory: the patient's visits of one type over
    # time. Empty on check-ins recorded before they were kept.
    Column("patient_id", String(100)),
    Column("appointment_type", String(40)),
    Column("visit_at", UtcDateTime()),
    UniqueConstraint("appointment_id", "round", name="uq_check_in_round"),
    Index("ix_check_ins_phone_due", "phone", "due_at"),
    Index("ix_check_ins_patient_type", "patient_id", "appointment_type"),
)

replies = Table(
    "aftercare_replies",
    metadata,
    Column("id", String(36), primary_key=True),
    # Twilio retries a webhook it could not deliver: the same MessageSid is handled once.
    Column("message_sid", String(64), unique=True),
    Column("check_in_id", String(36)),
    Column("via", String(10), nullable=False),
    Column("text", Text),
    Column("intent", String(20), nullable=False),
    Column("score", Integer),
    Column("red_flags", JSON, nullable=False),
    Column("action", String(30), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("response", Text),
    Column("received_at", UtcDateTime(), nullable=False),
    # A check-in's replies: counted, read for the pages already sent, and the latest on the staff's list.
    Index("ix_replies_check_in_received", "check_in_id", "received_at"),
)

consent_audit = Table(
    "aftercare_consent_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(10), nullable=False),
    Column("address", String(320), nullable=False),
    Column("subscribed", Boolean, nullable=False),
    Column("source", String(30), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
)

escalations = Table(
    "aftercare_escalations",
    metadata,
    Column("id", String(36), primary_key=True),  # the reply_id of its EscalationRaised
    Column("reference", String(8), nullable=False),
    Column("appointment_id", String(100)),
    Column("reasons", JSON, nullable=False),
    Column("context", JSON, nullable=False),
    Column("raised_at", UtcDateTime(), nullable=False),
    # Steps move by conditional updates on (paged, status): two watches never page twice.
    Column("paged", Integer, nullable=False),
    Column("last_paged_at", UtcDateTime(), nullable=False),
    Column("next_due_at", UtcDateTime()),  # None once acknowledged or exhausted
    Column("status", String(20), nullable=False),  # an EscalationStatus
    Column("acknowledged_by", String(20)),
    Column("acknowledged_at", UtcDateTime()),
    Index("ix_escalations_due", "status", "next_due_at"),
)

# Every step of an escalation: raised, paged (who, which channel), acknowledged (who, how), exhausted.
escalation_steps = Table(
    "aftercare_escalation_steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("escalation_id", String(36), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("role", String(20)),
    Column("contact_name", String(200)),
    Column("channel", String(20)),
    Column("occurred_at", UtcDateTime(), nullable=False),
)

# The pre-visit answers of an appointment: one row, replaced by a later submission until the visit.
screenings = Table(
    "aftercare_screenings",
    metadata,
    Column("appointment_id", String(100), primary_key=True),
    Column("appointment_type", String(40), nullable=False),
    Column("practitioner", String(200), nullable=False),
    Column("locale", String(10), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("answers", JSON, nullable=False),  # question id → "yes", "no" or the patient's text
    Column("flagged", JSON, nullable=False),  # the ids whose answer went to the practitioner
    # Replaced by a conditional update on `submissions`: two submissions at once are applied one after the other.
    Column("submissions", Integer, nullable=False),
    Column("first_submitted_at", UtcDateTime(), nullable=False),
    Column("submitted_at", UtcDateTime(), nullable=False),
)

# Visits still to come, as the appointment events leave them: a text from the patient's phone after a
# reminder went out, and before the visit starts, answers the reminder. One row per appointment, moved
# on only by an event with a higher per-appointment `sequence`.
upcoming_visits = Table(
    "aftercare_upcoming_visits",
    metadata,
    Column("appointment_id", String(100), primary_key=True),
    Column("sequence", Integer, nullable=False),
    Column("phone", String(20)),  # None when the patient has no number or no SMS consent
    Column("locale", String(10), nullable=False),
    Column("appointment_type", String(40), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    # an UpcomingStatus: booked | cancelled | no_show | completed
    Column("status", String(20), nullable=False),
    # When the booking or reschedule was made: a reminder sent before it named another time, and answers nothing.
    Column("planned_at", UtcDateTime(), nullable=False),
    Column("context", JSON, nullable=False),  # the appointment's message context, for the answers it gets
    # The patient's answer to its reminder: confirmed | change_requested, and when.
    Column("answer", String(20)),
    Column("answered_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_upcoming_visits_phone_starts", "phone", "starts_at"),
)

# The reminder texts the notifier reported sent (clinic.deliveries.v1), one row per text: a text from a
# patient's phone answers the latest reminder of its visits that reached it. `undelivered_at` is set when the
# carrier reported it could not deliver the text: it is no context then.
sent_reminders = Table(
    "aftercare_sent_reminders",
    metadata,
    Column("delivery_id", String(36), primary_key=True),  # the text's row in the notifier's ledger
    Column("appointment_id", String(100), nullable=False),
    Column("step", String(100), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=False),
    Column("undelivered_at", UtcDateTime()),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_sent_reminders_appointment", "appointment_id", "sent_at"),
)

outbox = outbox_table("aftercare_outbox", metadata)

# Everything the aftercare database holds: its own tables, the delivery ledger and suppressions.
SCHEMA = schema(metadata, ledger_tables.deliveries, ledger_tables.sms_suppressions,
                ledger_tables.email_suppressions)
