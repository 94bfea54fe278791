#!/usr/bin/env bash
# Run a real single-node Apache Kafka (KRaft, broker+controller in one JVM) on loopback, no Docker.
#   kafka.sh fetch
#   kafka.sh start  [--port 9092] [--controller-port 9093] [--data-dir .run/kafka]
#                   [--sasl-ssl-port P --tls-dir D --scram-user NAME --scram-password PASSWORD]
#   kafka.sh stop   [--data-dir .run/kafka]
#   kafka.sh status [--data-dir .run/kafka]
# Results go to stdout (bootstrap=...); progress and errors go to stderr.
# --sasl-ssl-port adds a SASL_SSL listener (SCRAM-SHA-512) for testing secured clients: D holds
# server.pem (the PEM private key, unencrypted, then the certificate chain); the SCRAM user is created
# when the data dir is formatted, so it only takes effect on a fresh data dir. The PLAINTEXT listener
# stays (loopback, inter-broker).
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
sasl_ssl_port=""
tls_dir=""
scram_user=""
scram_password=""

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

parse_args() {
    while (($#)); do
        case "$1" in
            --port) port="$2"; shift 2 ;;
            --controller-port) controller_port="$2"; shift 2 ;;
            --data-dir) data_dir="$2"; shift 2 ;;
            --sasl-ssl-port) sasl_ssl_port="$2"; shift 2 ;;
            --tls-dir) tls_dir="$2"; shift 2 ;;
            --scram-user) scram_user="$2"; shift 2 ;;
            --scram-password) scram_password="$2"; shift 2 ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    data_dir="$(realpath -m "$data_dir")"
    if [[ -n "$sasl_ssl_port" ]]; then
        [[ -n "$tls_dir" && -n "$scram_user" && -n "$scram_password" ]] \
            || die "--sasl-ssl-port needs --tls-dir, --scram-user and --scram-password"
        tls_dir="$(realpath -m "$tls_dir")"
        [[ -f "$tls_dir/server.pem" ]] || die "no server.pem in $tls_dir"
    fi
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
    local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port"
    local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if [[ -n "$sasl_ssl_port" ]]; then
        listeners+=",SASL_SSL://127.0.0.1:$sasl_ssl_port"
        protocols+=",SASL_SSL:SASL_SSL"
    fi
    cat >"$data_dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=$listeners
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
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
    [[ -z "$sasl_ssl_port" ]] && return 0
    cat >>"$data_dir/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$tls_dir/server.pem
EOF
}

storage_tool() {
    "$JAVA" -Xmx256m -cp "$LIBS/*" -Dlog4j2.configurationFile="$HERE/tools-log4j2.yaml" \
        kafka.tools.StorageTool "$@"
}

# What `StorageTool random-uuid` prints (16 random bytes, URL-safe base64, no padding, not starting
# with '-'), without starting a JVM for it: on a busy machine that JVM costs seconds of every start.
random_cluster_id() {
    local id
    until [[ -n "${id:-}" && "$id" != -* ]]; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
    echo "$id"
}

format_storage() {
    [[ -f "$data_dir/data/meta.properties" ]] && return 0
    local cluster_id
    cluster_id="$(random_cluster_id)"
    local scram=()
    [[ -n "$scram_user" ]] && scram=(--add-scram "SCRAM-SHA-512=[name=$scram_user,password=$scram_password]")
    storage_tool format --standalone -t "$cluster_id" -c "$data_dir/server.properties" "${scram[@]}" >&2
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
    for p in "$port" "$controller_port" $sasl_ssl_port; do
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
    [[ -z "$sasl_ssl_port" ]] || echo "sasl_ssl_bootstrap=127.0.0.1:$sasl_ssl_port"
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
