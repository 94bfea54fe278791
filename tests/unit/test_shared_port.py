"""Several booking instances on one host listen on one port (BOOKING_HTTP_SHARED_PORT), the kernel
spreading connections among them; only on PostgreSQL, where one relay at a time publishes."""
from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from services.booking_events.settings import BookingSettings
from shared.process import embedded_http_server
from tests.support.kafka_server import free_port


def answering(name: str) -> Starlette:
    async def who(_: Request) -> PlainTextResponse:
        return PlainTextResponse(name)

    return Starlette(routes=[Route("/who", who)])


async def serving(server, ready_timeout: float = 10.0) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + ready_timeout
    while not server.started:
        assert not task.done(), "the server stopped before it started"
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    return task


async def test_two_servers_on_one_shared_port_both_take_connections() -> None:
    port = free_port()
    servers = [embedded_http_server(answering(name), "127.0.0.1", port, shared_port=True) for name in ("a", "b")]
    tasks = [await serving(server) for server in servers]
    try:
        answered = []
        for _ in range(60):  # a new connection each time: the kernel picks a listener per connection
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{port}/who")
            answered.append(response.text)
        assert set(answered) == {"a", "b"}
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)


@pytest.mark.parametrize("shared_port", [False, True])
async def test_connections_are_answered_without_waiting_for_a_delayed_ack(shared_port: bool) -> None:
    """TCP_NODELAY on every accepted connection, as uvicorn's own listening socket gets: without it a
    response written in two parts waits out the client's delayed ACK (40 ms on Linux)."""
    port = free_port()
    server = embedded_http_server(answering("a"), "127.0.0.1", port, shared_port=shared_port)
    task = await serving(server)
    try:
        async with httpx.AsyncClient() as client:  # one keep-alive connection, open while looked at
            assert (await client.get(f"http://127.0.0.1:{port}/who")).text == "a"
            accepted = [connection.transport.get_extra_info("socket")
                        for connection in server.server_state.connections]
            assert accepted, "the connection is open"
            assert all(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for sock in accepted)
    finally:
        server.should_exit = True
        await task


async def test_without_sharing_a_second_server_cannot_take_the_port() -> None:
    port = free_port()
    first = embedded_http_server(answering("a"), "127.0.0.1", port)
    task = await serving(first)
    try:
        with pytest.raises(SystemExit):  # uvicorn's answer to an address in use
            await embedded_http_server(answering("b"), "127.0.0.1", port).serve()
    finally:
        first.should_exit = True
        await task


def test_a_shared_port_on_sqlite_is_refused_with_what_it_needs() -> None:
    with pytest.raises(ValidationError, match="needs PostgreSQL"):
        BookingSettings(http_shared_port=True, database_url="sqlite+aiosqlite:///./booking.db")
    assert BookingSettings(http_shared_port=True,
                           database_url="postgresql+asyncpg://clinic:clinic@127.0.0.1/clinic").http_shared_port
