"""What one patient has received so far, with when each message arrived."""
from __future__ import annotations

import time
from dataclasses import dataclass

from tests.e2e.conftest import Patient, System
from tests.support.channels import mails_to


@dataclass(frozen=True)
class Arrival:
    channel: str
    at: float  # epoch seconds
    text: str  # email subject or SMS body


def arrivals(system: System, patient: Patient) -> list[Arrival]:
    emails = [Arrival("email", mail.received_at, str(mail.message["Subject"]))
              for mail in mails_to(system.sink, patient.email)]
    texts = [Arrival("sms", message["sandbox_received_at"], message["body"])
             for message in system.twilio.messages(patient.phone)]
    return sorted(emails + texts, key=lambda arrival: arrival.at)


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def wait_for_count(system: System, patient: Patient, count: int, timeout: float = 30.0) -> list[Arrival]:
    deadline = time.monotonic() + timeout
    while True:
        found = arrivals(system, patient)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
