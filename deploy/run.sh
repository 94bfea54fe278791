#!/usr/bin/env bash
# Run the whole system on this machine, every part on 127.0.0.1, until Ctrl-C:
# Kafka, the SMTP sink, the Twilio sandbox, then booking_events, notifier and aftercare, and the ops console.
#   deploy/run.sh           start everything and print where to look
#   deploy/run.sh --demo    also book one appointment and show the email and SMS it produced
# State (Kafka data, SQLite databases, mail, SMS, logs) stays in .run/; `rm -rf .run` resets it.
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), LOG_LEVEL (INFO), LOG_JSON (false).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
RUN="$REPO/.run"
LOGS="$RUN/logs"
PY="$REPO/.venv/bin/python"
KAFKA_SH="$HERE/kafka/kafka.sh"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
SMTP_PORT=1025
TWILIO_PORT=8030
BOOKING_PORT=8010
AFTERCARE_PORT=8040
NOTIFIER_PORT=8020
BOOKING_METRICS=9100
NOTIFIER_METRICS=9101
AFTERCARE_METRICS=9102
CONSOLE_PORT=8050
API_KEY=local-dev-key
# A syntactically valid sandbox account; real Twilio is never reached from here.
TWILIO_SID=AC00000000000000000000000000000000
TWILIO_TOKEN=local-sandbox-token
STARTUP_TIMEOUT=120
STOP_TIMEOUT=15

demo=false

log() { echo "run.sh: $*" >&2; }
die() { log "$*"; exit 1; }

while (($#)); do
    case "$1" in
        --demo) demo=true; shift ;;
        -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (usage: run.sh [--demo])" ;;
    esac
done

# --- what we started, stopped in reverse layers on any exit ------------------------------

declare -A pid_of=()
services=()
sandboxes=()
kafka_started=false
cleaning=false

stop_group() {
    local name pid deadline
    for name in "$@"; do
        pid="${pid_of[$name]}"
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + STOP_TIMEOUT))
    for name in "$@"; do
        pid="${pid_of[$name]}"
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                log "$name (pid $pid) still running after ${STOP_TIMEOUT}s, sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.2
        done
        wait "$pid" 2>/dev/null || true
        log "stopped $name"
    done
}

cleanup() {
    local status=$?
    $cleaning && return
    cleaning=true
    # A second Ctrl-C must not abandon half-stopped processes; every step below is bounded.
    trap '' INT TERM
    ((${#services[@]})) && stop_group "${services[@]}"
    ((${#sandboxes[@]})) && stop_group "${sandboxes[@]}"
    if $kafka_started; then
        bash "$KAFKA_SH" stop --data-dir "$RUN/kafka" || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -----------------------------------------------------------------------------

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Started in a session of its own, so Ctrl-C reaches only this script, which then stops
# everything in order (services before the sandboxes and Kafka they talk to).
start_process() {
    local name="$1" group="$2"
    shift 2
    setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
    pid_of[$name]=$!
    if [[ "$group" == service ]]; then services+=("$name"); else sandboxes+=("$name"); fi
    log "started $name (pid $!, log .run/logs/$name.log)"
}

http_ok() {
    "$PY" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)
PY
}

port_ready() { port_in_use "$1"; }

# wait_until NAME CHECK ARG: until CHECK ARG succeeds, as long as NAME's process lives.
wait_until() {
    local name="$1" check="$2" target="$3" began=$SECONDS
    until "$check" "$target"; do
        if ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
            log "$name exited during startup; last lines of .run/logs/$name.log:"
            tail -n 30 "$LOGS/$name.log" >&2 || true
            exit 1
        fi
        if ((SECONDS - began >= STARTUP_TIMEOUT)); then
            log "$name not ready at $target after ${STARTUP_TIMEOUT}s; see .run/logs/$name.log"
            tail -n 30 "$LOGS/$name.log" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    log "$name ready ($target, $((SECONDS - began))s)"
}

has_service() { [[ -f "$REPO/services/$1/__main__.py" ]]; }

tomorrow_10am_toronto() {
    "$PY" - <<'PY'
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo
toronto = ZoneInfo("America/Toronto")
tomorrow = datetime.now(toronto).date() + timedelta(days=1)
print(datetime.combine(tomorrow, time(10, 0), tzinfo=toronto).isoformat())
PY
}

booking_body() {
    local suffix="$1"
    cat <<EOF
{"patient": {"patient_id": "demo-patient-$suffix", "name": "Alex Demo",
  "email": "alex.demo@example.com", "phone": "+14165550142", "locale": "en-CA",
  "consent": {"email": true, "sms": true}},
 "appointment": {"type": "dry_needling", "starts_at": "$(tomorrow_10am_toronto)",
  "duration_minutes": 45, "practitioner": "Dr. Sam Rivera", "location_id": "downtown"}}
EOF
}

curl_command() {
    local body
    body="$(booking_body "$1")"
    cat <<EOF
curl -sS --fail-with-body -X POST http://127.0.0.1:$BOOKING_PORT/v1/appointments \\
  -H 'Content-Type: application/json' -H 'X-API-Key: $API_KEY' \\
  -H "Idempotency-Key: \$(cat /proc/sys/kernel/random/uuid)" \\
  -d '$(tr -s ' \n' ' ' <<<"$body" | sed 's/ $//')'
EOF
}

# --- preflight: nothing is started until all of this holds --------------------------------

bash "$HERE/setup.sh"

for required in booking_events notifier; do
    has_service "$required" \
        || die "services/$required/__main__.py does not exist yet: 'python -m services.$required' cannot run"
done
with_aftercare=true
if ! has_service aftercare; then
    with_aftercare=false
    log "note: services/aftercare/__main__.py does not exist yet; running without aftercare" \
        "(patient links and SMS replies will go nowhere)"
fi
if $demo; then
    command -v curl >/dev/null || die "--demo needs curl (apt-get install curl)"
fi

if [[ "$(bash "$KAFKA_SH" status --data-dir "$RUN/kafka" 2>/dev/null)" == running* ]]; then
    die "a broker already runs from .run/kafka (another run.sh?); stop it: bash deploy/kafka/kafka.sh stop"
fi
ports=("$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$SMTP_PORT" "$TWILIO_PORT" "$BOOKING_PORT" "$BOOKING_METRICS"
       "$NOTIFIER_PORT" "$NOTIFIER_METRICS" "$CONSOLE_PORT")
$with_aftercare && ports+=("$AFTERCARE_PORT" "$AFTERCARE_METRICS")
for port in "${ports[@]}"; do
    port_in_use "$port" && die "port $port on 127.0.0.1 is already in use (another run.sh?)"
done

mkdir -p "$LOGS" "$RUN/mail"
ln -sfn ../kafka/logs "$LOGS/kafka"
if [[ ! -s "$RUN/link-secret" ]]; then
    (umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$RUN/link-secret")
    log "generated .run/link-secret (signs patient links; kept across runs)"
fi
if [[ ! -s "$RUN/console-token" ]]; then
    (umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$RUN/console-token")
    log "generated .run/console-token (the ops console's login; kept across runs)"
fi

# --- the environment every service reads --------------------------------------------------

# Whatever the calling shell holds, these processes talk only to the local sandboxes.
unset SMTP_USERNAME SMTP_PASSWORD SMTP_USE_TLS SMTP_START_TLS TWILIO_MESSAGING_SERVICE_SID
export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT"
export CLINIC_CONFIG_FILE="$REPO/deploy/clinic.yaml"
export LOG_LEVEL="${LOG_LEVEL:-INFO}"
export LOG_JSON="${LOG_JSON:-false}"
export SMTP_HOST=127.0.0.1 SMTP_PORT="$SMTP_PORT"
export SMTP_SENDER="Harbourfront Sports Medicine <care@harbourfront-clinic.example>"
export TWILIO_ACCOUNT_SID="$TWILIO_SID" TWILIO_AUTH_TOKEN="$TWILIO_TOKEN"
export TWILIO_FROM_NUMBER=+14165550100 TWILIO_API_BASE_URL="http://127.0.0.1:$TWILIO_PORT"
export PATIENT_WEB_URL="http://127.0.0.1:$AFTERCARE_PORT"
LINK_SECRET="$(cat "$RUN/link-secret")"
export LINK_SECRET
export BOOKING_API_KEYS="$API_KEY" BOOKING_HTTP_HOST=127.0.0.1 BOOKING_HTTP_PORT="$BOOKING_PORT"
export NOTIFIER_DATABASE_URL="sqlite+aiosqlite:///$RUN/notifier.db"
export NOTIFIER_METRICS_PORT="$NOTIFIER_METRICS"
export BOOKING_METRICS_HOST=127.0.0.1 BOOKING_METRICS_PORT="$BOOKING_METRICS"
# The sandbox reports each SMS's fate to the service that sent it, as Twilio does.
export NOTIFIER_HTTP_HOST=127.0.0.1 NOTIFIER_HTTP_PORT="$NOTIFIER_PORT"
export NOTIFIER_PUBLIC_STATUS_CALLBACK_URL="http://127.0.0.1:$NOTIFIER_PORT/twilio/status"
export AFTERCARE_PUBLIC_STATUS_CALLBACK_URL="http://127.0.0.1:$AFTERCARE_PORT/twilio/status"
export AFTERCARE_DATABASE_URL="sqlite+aiosqlite:///$RUN/aftercare.db"
export AFTERCARE_HTTP_HOST=127.0.0.1 AFTERCARE_HTTP_PORT="$AFTERCARE_PORT"
export AFTERCARE_METRICS_PORT="$AFTERCARE_METRICS"
# The URL the Twilio sandbox posts to and signs; aftercare validates signatures against it.
export AFTERCARE_PUBLIC_WEBHOOK_URL="http://127.0.0.1:$AFTERCARE_PORT/twilio/inbound"

# --- start, layer by layer ----------------------------------------------------------------

kafka_started=true  # set before: an interrupted start still leaves a broker to stop
bash "$KAFKA_SH" start --port "$KAFKA_PORT" --controller-port "$KAFKA_CONTROLLER_PORT" \
    --data-dir "$RUN/kafka" >/dev/null

start_process smtp-sink sandbox "$PY" -m sandbox.smtp_sink --port "$SMTP_PORT" --maildir "$RUN/mail"
start_process twilio-sandbox sandbox "$PY" -m sandbox.twilio_sandbox --port "$TWILIO_PORT" \
    --account-sid "$TWILIO_SID" --auth-token "$TWILIO_TOKEN" \
    --inbound-webhook-url "$AFTERCARE_PUBLIC_WEBHOOK_URL" \
    --record-file "$RUN/sms.jsonl"
wait_until smtp-sink port_ready "$SMTP_PORT"
wait_until twilio-sandbox http_ok "http://127.0.0.1:$TWILIO_PORT/_sandbox/messages"

# Given to it alone, so no other service mistakes it for its own database.
booking_db="sqlite+aiosqlite:///$RUN/booking.db"
start_process booking_events service \
    env BOOKING_DATABASE_URL="$booking_db" "$PY" -m services.booking_events
start_process notifier service "$PY" -m services.notifier
$with_aftercare && start_process aftercare service "$PY" -m services.aftercare
wait_until booking_events http_ok "http://127.0.0.1:$BOOKING_PORT/healthz"
wait_until notifier http_ok "http://127.0.0.1:$NOTIFIER_PORT/healthz"
$with_aftercare && wait_until aftercare http_ok "http://127.0.0.1:$AFTERCARE_PORT/healthz"
# Its token and database URLs reach the console alone (assignments before a function call).
CONSOLE_TOKEN="$(cat "$RUN/console-token")" CONSOLE_PORT="$CONSOLE_PORT" \
    CONSOLE_KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP_SERVERS" CONSOLE_BOOKING_DATABASE_URL="$booking_db" \
    CONSOLE_NOTIFIER_DATABASE_URL="$NOTIFIER_DATABASE_URL" CONSOLE_AFTERCARE_DATABASE_URL="$AFTERCARE_DATABASE_URL" \
    start_process console service "$PY" -m console
wait_until console http_ok "http://127.0.0.1:$CONSOLE_PORT/healthz"

# --- where to look ------------------------------------------------------------------------

aftercare_line="http://127.0.0.1:$AFTERCARE_PORT (metrics http://127.0.0.1:$AFTERCARE_METRICS/metrics)"
$with_aftercare || aftercare_line="not running (services/aftercare/__main__.py missing)"
cat <<EOF

clinic-notify is running on 127.0.0.1. Ctrl-C stops everything.

  Booking API   http://127.0.0.1:$BOOKING_PORT  (X-API-Key: $API_KEY; metrics /metrics)
  Book one:
$(curl_command "$(date +%s)" | sed 's/^/    /')

  Emails        $RUN/mail/  (one .eml per message)
  SMS           http://127.0.0.1:$TWILIO_PORT/_sandbox/messages  (also $RUN/sms.jsonl)
  Notifier      metrics http://127.0.0.1:$NOTIFIER_METRICS/metrics
  Aftercare     $aftercare_line
  Ops console   http://127.0.0.1:$CONSOLE_PORT  (token: cat $RUN/console-token)
  Kafka         127.0.0.1:$KAFKA_PORT
  Logs          $LOGS/

EOF

if $demo; then
    log "demo: booking a dry-needling appointment for tomorrow 10:00 in Toronto"
    mails_before=$(find "$RUN/mail" -name '*.eml' | wc -l)
    # The curl line shown above, run as is.
    booked=true
    bash -c "$(curl_command "$(date +%s)")" >&2 || booked=false
    echo >&2
    if $booked; then
        log "demo: booked; waiting up to 20s for the email"
    else
        log "demo: the booking was refused (see above and .run/logs/booking_events.log); still running"
    fi
    for _ in $($booked && seq 40); do
        (($(find "$RUN/mail" -name '*.eml' | wc -l) > mails_before)) && break
        sleep 0.5
    done
    latest_mail="$(ls -t "$RUN"/mail/*.eml 2>/dev/null | head -n 1 || true)"
    if [[ -n "$latest_mail" ]]; then
        echo "  Newest email: $(grep -m1 -i '^Subject:' "$latest_mail")  ($latest_mail)"
    else
        echo "  No email yet; see .run/logs/notifier.log"
    fi
    "$PY" - "http://127.0.0.1:$TWILIO_PORT/_sandbox/messages" <<'PY' || true
import json, sys, urllib.request
messages = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
if messages:
    print(f"  Newest SMS: {messages[-1].get('body')!r}")
else:
    print("  No SMS yet (the 24h/2h reminders are scheduled, not sent at once); see .run/logs/notifier.log")
PY
    echo
fi

# --- run until Ctrl-C or until one part dies ----------------------------------------------

while true; do
    for name in "${services[@]}" "${sandboxes[@]}"; do
        if ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
            log "$name exited; last lines of .run/logs/$name.log:"
            tail -n 20 "$LOGS/$name.log" >&2 || true
            exit 1
        fi
    done
    if ! bash "$KAFKA_SH" status --data-dir "$RUN/kafka" >/dev/null 2>&1; then
        log "Kafka exited; see .run/logs/kafka/server.log"
        exit 1
    fi
    sleep 2 &
    wait $! || true
done
