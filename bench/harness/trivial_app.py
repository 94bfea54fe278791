"""`python -m bench.harness.trivial_app PORT`: the same stack as the booking API (FastAPI on uvicorn, one
process, no access log) serving one endpoint that reads a JSON body and answers 201: the HTTP stack's
own limit on this machine."""
from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.post("/echo", status_code=201)
async def echo(body: dict[str, Any]) -> dict[str, Any]:
    return {"accepted": body.get("n")}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
