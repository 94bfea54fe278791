#!/usr/bin/env bash
# Run a real single-node Apache Kafka (KRaft, broker+controller in one JVM) on loopback, no Docker.
#   kafka.sh fetch
#   kafka.sh start  [--port 9092] [--controller-port 9093] [--data-dir .run/kafka]
#   kafka.sh stop   [--data-dir .run/kafka]
#   kafka.sh status [--data-dir .run/kafka]
# Results go to stdout (bootstrap=...); progress and errors go to stderr.
set -euo pipefail

KAFKA_VERSION=4.1.1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${CLINIC_NOTIFY_CACHE:-$HOME/.cache/clinic-notify}/kafka-$KAFKA_VERSION"
LIBS="$CACHE/libs"
JAVA="${JAVA:-java}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
START_TIMEOUT=90
STOP_TIMEOUT=20

port=9092
controller_port=9093
data_dir="$REPO/.run/kafka"

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

parse_args() {
    while (($#)); do
        case "$1" in
            --port) port="$2"; shift 2 ;;
            --controller-port) controller_port="$2"; shift 2 ;;
            --data-dir) data_dir="$2"; shift 2 ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    data_dir="$(realpath -m "$data_dir")"
}

fetch() {
    [[ -f "$LIBS/.complete" ]] && return 0
    command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
    log "fetching Kafka $KAFKA_VERSION jars into $LIBS"
    mkdir -p "$CACHE"
    # Two concurrent fetches must not interleave their copies into one libs dir.
    exec 9>"$CACHE/.fetch.lock"
    flock 9
    if [[ ! -f "$LIBS/.complete" ]]; then
        rm -rf "$LIBS"
        mvn -B -q -Dstyle.color=never -f "$HERE/pom.xml" \
            org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$LIBS" >"$CACHE/fetch.log" 2>&1 \
            || { cat "$CACHE/fetch.log" >&2; die "mvn could not fetch the Kafka jars"; }
        touch "$LIBS/.complete"
    fi
    exec 9>&-
}

pid_file() { echo "$data_dir/kafka.pid"; }

# The pid file can outlive the broker and its pid can be reused: only trust a live kafka.Kafka.
running_pid() {
    local pid cmdline
    pid="$(cat "$(pid_file)" 2>/dev/null)" && [[ -n "$pid" ]] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"kafka.Kafka "* ]] || return 1
    echo "$pid"
}

elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_server_properties() {
    cat >"$data_dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data_dir/data
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
}

storage_tool() {
    "$JAVA" -Xmx256m -cp "$LIBS/*" -Dlog4j2.configurationFile="$HERE/tools-log4j2.yaml" \
        kafka.tools.StorageTool "$@"
}

format_storage() {
    [[ -f "$data_dir/data/meta.properties" ]] && return 0
    local cluster_id
    cluster_id="$(storage_tool random-uuid)"
    storage_tool format --standalone -t "$cluster_id" -c "$data_dir/server.properties" >&2
}

fail_start() {
    log "$1; last lines of $data_dir/logs/server.log and broker.out:"
    tail -n 40 "$data_dir/logs/server.log" >&2 2>/dev/null || true
    tail -n 20 "$data_dir/broker.out" >&2 2>/dev/null || true
    exit 1
}

start() {
    parse_args "$@"
    local began=$EPOCHREALTIME pid
    if pid="$(running_pid)"; then
        die "already running (pid $pid, data dir $data_dir); stop it first"
    fi
    for p in "$port" "$controller_port"; do
        port_in_use "$p" && die "port $p on 127.0.0.1 is already in use"
    done
    fetch
    mkdir -p "$data_dir/logs"
    write_server_properties
    format_storage
    rm -f "$data_dir/logs/server.log"
    # shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags
    nohup "$JAVA" $HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
        -Dkafka.logs.dir="$data_dir/logs" -Dlog4j2.configurationFile="$HERE/log4j2.yaml" \
        -cp "$LIBS/*" kafka.Kafka "$data_dir/server.properties" \
        </dev/null >"$data_dir/broker.out" 2>&1 &
    pid=$!
    echo "$pid" >"$(pid_file)"
    local deadline=$((SECONDS + START_TIMEOUT))
    until grep -q 'Kafka Server started' "$data_dir/logs/server.log" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || fail_start "broker exited during startup"
        if ((SECONDS >= deadline)); then
            kill -KILL "$pid" 2>/dev/null || true
            fail_start "broker not started after ${START_TIMEOUT}s (killed)"
        fi
        sleep 0.2
    done
    log "started in $(elapsed_since "$began")s (pid $pid, data dir $data_dir)"
    echo "bootstrap=127.0.0.1:$port"
}

stop() {
    parse_args "$@"
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$(pid_file)"
        log "not running"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pid_file)"
    log "stopped (pid $pid)"
}

status() {
    parse_args "$@"
    local pid
    if pid="$(running_pid)"; then
        echo "running pid=$pid $(grep '^listeners=' "$data_dir/server.properties")"
    else
        echo "stopped"
        return 3
    fi
}

case "${1:-}" in
    fetch) fetch ;;
    start | stop | status) cmd="$1"; shift; "$cmd" "$@" ;;
    *) die "usage: kafka.sh fetch | start [--port P] [--controller-port C] [--data-dir D] | stop [--data-dir D] | status [--data-dir D]" ;;
esac
