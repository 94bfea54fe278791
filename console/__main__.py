"""`python -m console`: the ops console on CONSOLE_HOST:CONSOLE_PORT (127.0.0.1:8050 unless told)."""
from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from console.app import build
from console.settings import ConsoleSettings
from shared.observability import configure_logging, get_logger
from shared.settings import CommonSettings


def main() -> None:
    common = CommonSettings()
    configure_logging(common.log_level, common.log_json)
    try:
        settings = ConsoleSettings()  # the token comes from the environment
    except ValidationError as error:
        problems = "; ".join(f"CONSOLE_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        sys.exit(f"console: {problems}")
    get_logger("console").info("console_starting", url=f"http://{settings.host}:{settings.port}/")
    # No access log: a lookup is a POST, but query strings (dead-letter filters) need not go to logs either.
    uvicorn.run(build(settings), host=settings.host, port=settings.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
