"""Staff use the ops console in a real browser, against the real broker and the services' databases."""
from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from shared.database import create_engine
from shared.ledger.ledger import DeliveryLedger
from shared.ledger.model import DeliveryIntent
from shared.topics import APPOINTMENTS, APPOINTMENTS_DEAD_LETTER
from tests.browser.conftest import Console
from tests.support.kafka_server import KafkaServer

pytestmark = [pytest.mark.browser, pytest.mark.kafka]
WAIT_S = 30


def log_in(browser: webdriver.Chrome, console: Console, token: str | None = None) -> None:
    """Log in, and wait for the answer: the console's token lands on the lag page, another on the login
    error. (A page asked for before the login's redirect has landed is overtaken by it.)"""
    browser.get(f"{console.url}/login")
    browser.find_element(By.ID, "token").send_keys(console.token if token is None else token)
    browser.find_element(By.ID, "login").click()
    if token is None:
        WebDriverWait(browser, WAIT_S).until(expected_conditions.url_to_be(f"{console.url}/lag"))
    else:
        WebDriverWait(browser, WAIT_S).until(expected_conditions.presence_of_element_located((By.ID, "login-error")))


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]],
                  partition: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition, headers=headers)
    finally:
        await producer.stop()


async def end_offset(bootstrap: str, partition: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return int((await consumer.end_offsets([partition]))[partition])
    finally:
        await consumer.stop()


async def commit(bootstrap: str, group: str, partition: TopicPartition, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.commit({partition: offset})
    finally:
        await consumer.stop()


async def records_from(bootstrap: str, partition: TopicPartition, offset: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([partition])
        consumer.seek(partition, offset)
        end = (await consumer.end_offsets([partition]))[partition]
        found: list[ConsumerRecord] = []
        while await consumer.position(partition) < end:
            found.extend((await consumer.getmany(partition, timeout_ms=500)).get(partition, []))
        return found
    finally:
        await consumer.stop()


def test_a_wrong_token_is_refused_and_the_right_one_opens_the_console(
    browser: webdriver.Chrome, console: Console
) -> None:
    browser.get(f"{console.url}/lag")
    assert browser.current_url == f"{console.url}/login", "no page without logging in"

    log_in(browser, console, token="x" * 43)
    assert "not the console's" in browser.find_element(By.ID, "login-error").text
    assert browser.get_cookies() == []
    browser.get(f"{console.url}/ledger")
    assert browser.current_url == f"{console.url}/login"

    log_in(browser, console)
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_to_be(f"{console.url}/lag"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Consumer lag"
    [cookie] = browser.get_cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert console.token not in cookie["value"]


def test_the_lag_page_shows_how_far_a_consumer_group_is_behind(
    browser: webdriver.Chrome, console: Console, kafka: KafkaServer, unique_id: str
) -> None:
    group = f"notifier-{unique_id}"
    partition = TopicPartition(APPOINTMENTS, 0)
    caught_up = asyncio.run(end_offset(kafka.bootstrap_servers, partition))
    asyncio.run(commit(kafka.bootstrap_servers, group, partition, caught_up))
    events: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = [
        (f"apt-lag-{unique_id}-{n}".encode(), b"{}", []) for n in range(4)]
    asyncio.run(produce(kafka.bootstrap_servers, APPOINTMENTS, events, partition=0))

    log_in(browser, console)
    browser.get(f"{console.url}/lag")
    table = browser.find_element(By.ID, f"group-{group}")
    assert f"{group}: lag 4" in table.find_element(By.TAG_NAME, "caption").text
    [row] = [row for row in table.find_elements(By.TAG_NAME, "tr")[1:]
             if row.find_elements(By.TAG_NAME, "td")[1].text == "0"]
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert cells == [APPOINTMENTS, "0", str(caught_up), str(caught_up + 4), "4"]


def test_a_dead_letter_is_shown_masked_and_replaying_it_puts_it_back_on_its_source_topic(
    browser: webdriver.Chrome, console: Console, kafka: KafkaServer, unique_id: str
) -> None:
    group = f"notifier-{unique_id}"
    key = f"apt-dead-{unique_id}"
    body = (b'{"event_type": "AppointmentBooked", "sequence": 1, "appointment_id": "' + key.encode() + b'", '
            b'"patient": {"name": "Morgan Privatename", "phone": "+14165550177", "email": "morgan@example.com"}}')
    source_offset = random.randrange(10**6, 10**9)
    asyncio.run(produce(kafka.bootstrap_servers, APPOINTMENTS_DEAD_LETTER, [(key.encode(), body, [
        ("event_type", b"AppointmentBooked"),
        ("dlq-reason", b"processing_failed"), ("dlq-detail", b"KeyError after 3 attempts"),
        ("dlq-source-topic", APPOINTMENTS.encode()), ("dlq-source-partition", b"3"),
        ("dlq-source-offset", str(source_offset).encode()), ("dlq-consumer-group", group.encode()),
    ])], partition=0))
    source = TopicPartition(APPOINTMENTS, 3)
    before = asyncio.run(end_offset(kafka.bootstrap_servers, source))

    log_in(browser, console)
    browser.get(f"{console.url}/dead-letters?group={group}")
    [row] = browser.find_elements(By.CSS_SELECTOR, "#dead-letters tr[id^=letter-]")
    assert key in row.text and "processing_failed" in row.text and "KeyError after 3 attempts" in row.text
    assert f"{APPOINTMENTS}/3/{source_offset}" in row.text
    assert "+1416•••0177" in row.text and "m•••@example.com" in row.text
    page = browser.page_source
    assert "Privatename" not in page and "+14165550177" not in page and "morgan@example.com" not in page

    row.find_element(By.CLASS_NAME, "replay-one").click()
    WebDriverWait(browser, WAIT_S).until(expected_conditions.text_to_be_present_in_element((By.ID, "state"), "Done"))
    assert "1 replayed" in browser.find_element(By.ID, "state").text

    [back] = asyncio.run(records_from(kafka.bootstrap_servers, source, before))
    assert back.key == key.encode() and back.value == body
    assert back.headers == (("event_type", b"AppointmentBooked"),)

    browser.get(f"{console.url}/dead-letters?group={group}")
    [row] = browser.find_elements(By.CSS_SELECTOR, "#dead-letters tr[id^=letter-]")
    assert "by console" in row.text and not row.find_elements(By.CLASS_NAME, "replay-one")


async def record_deliveries(database_url: str, appointment_id: str) -> None:
    now = datetime.now(UTC)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await DeliveryLedger(engine).record(connection, [
                DeliveryIntent(appointment_id, "reminder_24h", "sms", 1, "reminder_24h", "+14165550123", "en-CA",
                               now + timedelta(hours=2)),
                DeliveryIntent(appointment_id, "confirmation", "email", 1, "confirmation", "alex@example.com",
                               "en-CA", now - timedelta(minutes=1)),
            ], now)
    finally:
        await engine.dispose()


def test_the_ledger_page_shows_what_is_due_next_without_recipient_addresses(
    browser: webdriver.Chrome, console: Console, unique_id: str
) -> None:
    appointment = f"apt-ledger-{unique_id}"
    asyncio.run(record_deliveries(console.notifier_database_url, appointment))

    log_in(browser, console)
    browser.get(f"{console.url}/ledger")
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#upcoming-notifier tr")
            if appointment in row.text]
    assert len(rows) == 2
    assert "confirmation" in rows[0] and "a•••@example.com" in rows[0] and "(due)" in rows[0]
    assert "reminder_24h" in rows[1] and "+1416•••0123" in rows[1] and "(due)" not in rows[1]
    page = browser.page_source
    assert "+14165550123" not in page and "alex@example.com" not in page
    assert "pending" in browser.find_element(By.CSS_SELECTOR, "#upcoming-notifier").text
