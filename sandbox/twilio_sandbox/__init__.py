"""A Twilio-compatible SMS sandbox for local runs and integration tests."""
from sandbox.twilio_sandbox.app import DEFAULT_SANDBOX_NUMBER, create_app
from sandbox.twilio_sandbox.cli import main

__all__ = ["DEFAULT_SANDBOX_NUMBER", "create_app", "main"]
