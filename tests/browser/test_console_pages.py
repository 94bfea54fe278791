"""Staff read the outbox backlog, the escalations and the suppression lists in the console, in a real browser."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from services.aftercare.views import recent_escalations
from services.booking_events.tables import outbox as booking_outbox
from services.notifier.tables import outbox as notifier_outbox
from shared.database import create_engine
from shared.events.deliveries import DeliveryStatusChanged
from shared.ledger.suppressions import SuppressionList
from shared.outbox.store import Outbox
from shared.topics import APPOINTMENTS, DELIVERIES
from tests.browser.conftest import Console
from tests.browser.test_console import WAIT_S, log_in
from tests.integration.aftercare.conftest import ON_CALL_PHONE, ROUND_1, aftercare_on
from tests.support.events import booked

pytestmark = [pytest.mark.browser, pytest.mark.kafka]
CONSOLE_ZONE = ZoneInfo("America/Toronto")  # the console's default CONSOLE_TIME_ZONE


def as_shown(moment: datetime) -> str:
    """A time as the console's pages write it."""
    return moment.astimezone(CONSOLE_ZONE).strftime("%Y-%m-%d %H:%M")


def table_rows(browser: webdriver.Chrome) -> dict[str, list[str]]:
    """The page's table rows by their first cell, each as the texts of its cells."""
    rows: dict[str, list[str]] = {}
    for row in browser.find_element(By.TAG_NAME, "table").find_elements(By.TAG_NAME, "tr")[1:]:
        cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        rows[cells[0]] = cells
    return rows


# --- outbox ---

async def store_unpublished(database_url: str, outbox: Outbox, events: list[tuple[str, str, BaseModel, datetime]],
                            published: int = 0) -> None:
    """Store (topic, key, event, created_at) in the service's outbox; the first `published` were relayed."""
    engine = create_engine(database_url)
    try:
        ids: list[int] = []
        for topic, key, event, created_at in events:
            async with engine.begin() as connection:
                ids.append(await outbox.add(connection, topic=topic, key=key, event=event, now=created_at))
        await outbox.mark_published(engine, ids[:published], datetime.now(UTC))
    finally:
        await engine.dispose()


def status_changed(appointment_id: str, at: datetime) -> DeliveryStatusChanged:
    return DeliveryStatusChanged(occurred_at=at, appointment_id=appointment_id, delivery_id=f"{appointment_id}-sms",
                                 service="notifier", step="reminder_24h", channel="sms", template="reminder_24h",
                                 source="dispatcher", status="sent")


def test_the_outbox_page_shows_each_services_unpublished_events_and_how_long_the_oldest_has_waited(
    browser: webdriver.Chrome, console: Console, unique_id: str
) -> None:
    now = datetime.now(UTC)
    booking_oldest, notifier_oldest = now - timedelta(days=3, minutes=10), now - timedelta(hours=5, minutes=10)
    starts = now + timedelta(days=7)
    asyncio.run(store_unpublished(console.booking_database_url, Outbox(booking_outbox), [
        (APPOINTMENTS, f"apt-out-{unique_id}-{n}", booked(f"apt-out-{unique_id}-{n}", starts), created_at)
        for n, created_at in enumerate((now - timedelta(days=9), booking_oldest, now - timedelta(minutes=2),
                                        now - timedelta(seconds=5)))
    ], published=1))
    asyncio.run(store_unpublished(console.notifier_database_url, Outbox(notifier_outbox), [
        (DELIVERIES, f"apt-out-{unique_id}-{n}", status_changed(f"apt-out-{unique_id}-{n}", created_at), created_at)
        for n, created_at in enumerate((now - timedelta(days=1), notifier_oldest, now - timedelta(minutes=1)))
    ], published=1))

    log_in(browser, console)
    browser.get(f"{console.url}/outbox")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Outbox backlog"
    rows = table_rows(browser)
    assert rows["booking_events"] == ["booking_events", "3", as_shown(booking_oldest), "3 days"]
    assert rows["notifier"] == ["notifier", "2", as_shown(notifier_oldest), "5 h"]


# --- escalations ---

PATIENTS = {
    "ack": {"patient_id": "pt-esc-1", "name": "Robin Confidentielle", "phone": "+14165550141",
            "email": "robin.confidentielle@example.com"},
    "open": {"patient_id": "pt-esc-2", "name": "Dana Secretname", "phone": "+14165550142",
             "email": "dana.secretname@example.com"},
}
WORRYING_REPLY = "7 and my chest hurts when I breathe"


async def raise_two_escalations_and_acknowledge_one(database_url: str, unique_id: str) -> dict[str, tuple[str, str]]:
    """Two patients answer their check-in with chest pain; on-call acknowledges the first by SMS, nobody the
    second, so the backup is paged for it. Returns the appointment and the escalation's reference of each."""
    appointments = {which: f"apt-esc-{which}-{unique_id}" for which in PATIENTS}
    async with aftercare_on(database_url) as aftercare:
        for which, details in PATIENTS.items():
            await aftercare.visit_completed(appointments[which], **details)
        raised = ROUND_1 + timedelta(hours=1)
        aftercare.clock.set(raised)
        for which, details in PATIENTS.items():
            await aftercare.answers.sms_reply(f"SM-{appointments[which]}", details["phone"], WORRYING_REPLY)
        references = {row.appointment_id: row.reference
                      for row in await recent_escalations(aftercare.engine, None, 50)}
        aftercare.clock.set(raised + timedelta(minutes=3))
        answer = await aftercare.parts.escalations.sms_from_staff(
            ON_CALL_PHONE, f"OK {references[appointments['ack']]}")
        assert "acknowledged" in answer
        aftercare.clock.set(raised + timedelta(minutes=15))
        assert await aftercare.parts.escalations.advance_due() == 1
    return {which: (appointment, references[appointment]) for which, appointment in appointments.items()}


def test_the_escalations_page_shows_which_were_acknowledged_and_no_patient_details(
    browser: webdriver.Chrome, console: Console, unique_id: str
) -> None:
    escalations = asyncio.run(raise_two_escalations_and_acknowledge_one(console.aftercare_database_url, unique_id))
    raised = ROUND_1 + timedelta(hours=1)

    log_in(browser, console)
    browser.get(f"{console.url}/escalations")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Recent escalations"
    rows = {cells[1]: cells for cells in table_rows(browser).values()}
    acknowledged, waiting = rows[escalations["ack"][0]], rows[escalations["open"][0]]
    assert acknowledged[0] == escalations["ack"][1] and waiting[0] == escalations["open"][1]
    assert "red_flag:chest_pain" in acknowledged[2].split(", ") and "red_flag:chest_pain" in waiting[2].split(", ")
    assert acknowledged[3:] == [as_shown(raised), "acknowledged", "1/3",
                                f"yes, by on_call at {as_shown(raised + timedelta(minutes=3))}"]
    assert waiting[3:] == [as_shown(raised), "open", "2/3", "no"]
    page = browser.page_source
    for details in PATIENTS.values():
        assert details["name"] not in page and details["phone"] not in page and details["email"] not in page
    assert WORRYING_REPLY not in page and "chest hurts" not in page


# --- suppressions ---

async def opt_out(database_url: str, channel: str, address: str, source: str, at: datetime) -> None:
    engine = create_engine(database_url)
    try:
        await SuppressionList(engine).suppress(channel, address, source, at)
    finally:
        await engine.dispose()


def answered_page_loaded(browser: webdriver.Chrome) -> bool:
    """True once the page the form was sent from is gone and its answer has loaded.

    The form's page carries a marker in its window; a new document has none. Chrome may
    answer a question about the old page's elements mid-navigation with an error other
    than "stale element", so the question is asked of the document, and a navigation
    still under way counts as "not yet".
    """
    try:
        return bool(browser.execute_script(
            "return window.lookupSent === undefined && document.readyState === 'complete'"))
    except WebDriverException:
        return False


def look_up(browser: webdriver.Chrome, console: Console, address: str) -> None:
    browser.get(f"{console.url}/suppressions")
    browser.find_element(By.ID, "address").send_keys(address)
    browser.execute_script("window.lookupSent = true")
    browser.find_element(By.ID, "lookup").click()
    WebDriverWait(browser, WAIT_S).until(answered_page_loaded)


def answers(browser: webdriver.Chrome) -> list[str]:
    answered: WebElement = browser.find_element(By.ID, "answers")
    return [item.text for item in answered.find_elements(By.TAG_NAME, "li")]


def test_a_suppressed_phone_or_email_is_found_with_when_and_why_and_an_unknown_one_is_not(
    browser: webdriver.Chrome, console: Console, unique_id: str
) -> None:
    texted_stop = datetime.now(UTC) - timedelta(days=2)
    unsubscribed = datetime.now(UTC) - timedelta(hours=6)
    email = f"casey.{unique_id}@example.com"
    asyncio.run(opt_out(console.notifier_database_url, "sms", "+14165550188", "sms_keyword", texted_stop))
    asyncio.run(opt_out(console.aftercare_database_url, "email", email, "email_link", unsubscribed))

    log_in(browser, console)
    look_up(browser, console, "(416) 555-0188")
    assert browser.find_element(By.TAG_NAME, "h2").text == "+1416•••0188"
    assert answers(browser) == [f"notifier: suppressed since {as_shown(texted_stop)} by source sms_keyword",
                                "aftercare: not suppressed"]
    assert browser.find_element(By.ID, "address").get_attribute("value") == "", "the address is not kept in the form"

    look_up(browser, console, f"  {email.upper()} ")
    assert browser.find_element(By.TAG_NAME, "h2").text == "c•••@example.com"
    assert answers(browser) == ["notifier: not suppressed",
                                f"aftercare: suppressed since {as_shown(unsubscribed)} by source email_link"]
    assert email not in browser.page_source

    look_up(browser, console, f"nobody.{unique_id}@example.com")
    assert answers(browser) == ["notifier: not suppressed", "aftercare: not suppressed"]


@pytest.mark.parametrize("typed", ["call me maybe", "555-01", "@example.com", "casey@"])
def test_what_is_neither_a_phone_nor_an_email_gets_an_error_not_an_answer(
    browser: webdriver.Chrome, console: Console, typed: str
) -> None:
    log_in(browser, console)
    look_up(browser, console, typed)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Suppression lookup"
    assert browser.find_element(By.CLASS_NAME, "error").text == "neither an email address nor a phone number"
    assert browser.find_elements(By.ID, "answers") == []
    assert browser.find_elements(By.ID, "address"), "the form is there to try again"
