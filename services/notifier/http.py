"""The notifier's HTTP side: its health, and Twilio's status callbacks for the SMS it sends."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from shared.delivery.status_reports import ProviderStatusReports
from shared.http_edge import NO_OPENTELEMETRY
from shared.process import Health
from shared.twilio_webhooks import WebhookSecurity, add_status_callback_route


def create_web_app(*, health: Health, reports: ProviderStatusReports, webhook: WebhookSecurity) -> FastAPI:
    app = FastAPI(title="clinic-notify notifier", docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry=NO_OPENTELEMETRY)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if not health.ok:
            return JSONResponse({"status": "unhealthy", "dead_workers": health.dead_workers}, status_code=503)
        return JSONResponse({"status": "ok"})

    add_status_callback_route(app, reports, webhook)
    return app
