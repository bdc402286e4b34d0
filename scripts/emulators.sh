#!/usr/bin/env bash
# Installs (when missing), starts and stops the local AWS peers the tests use
# (DESIGN.md §8). Everything listens on 127.0.0.1 on free ports.
#
#   eval "$(scripts/emulators.sh up)"   # start; prints `export` lines
#   scripts/emulators.sh down           # stop what `up` started (by PID)
#   scripts/emulators.sh install        # install only
#
# Started peers:
#   kinesis-local  (npm, pinned)   -> AWS_ENDPOINT_URL_KINESIS; streams become ACTIVE in 10 ms
#   kinesis-local  "slow"          -> TRIBUTARY_TEST_KINESIS_SLOW_ENDPOINT; streams stay CREATING for 10 minutes
#   moto           (pip, pinned)   -> AWS_ENDPOINT_URL_STS / _IAM / _DYNAMODB / _S3 / _GLUE (no IAM enforcement);
#                                     started by moto_serialized.py, which makes each DynamoDB request atomic
#   moto "auth"                    -> TRIBUTARY_TEST_MOTO_AUTH_ENDPOINT; a test turns IAM enforcement on
#                                     through /moto-api/reset-auth, so it is kept apart from the others
set -euo pipefail

KINESIS_LOCAL_VERSION=0.6.2
GLUE_SERDE_VERSION=${GLUE_SERDE_VERSION:-1.1.3}
MOTO_VERSION=5.2.5
TOOLS_DIR=${TRIBUTARY_TOOLS_DIR:-"$HOME/.cache/tributary"}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_FILE=${TRIBUTARY_EMULATORS_STATE:-"$SCRIPT_DIR/../.emulators/pids"}
LOG_DIR=$(dirname "$STATE_FILE")
KINESIS_DIR="$TOOLS_DIR/kinesis-local-$KINESIS_LOCAL_VERSION"
MOTO_VENV="$TOOLS_DIR/moto-$MOTO_VERSION"

log() { echo "emulators: $*" >&2; }

install() {
  mkdir -p "$TOOLS_DIR"
  if [ ! -f "$KINESIS_DIR/node_modules/kinesis-local/main.js" ]; then
    command -v npm >/dev/null || { log "npm is required (apt-get install nodejs npm)"; exit 1; }
    log "installing kinesis-local@$KINESIS_LOCAL_VERSION into $KINESIS_DIR"
    mkdir -p "$KINESIS_DIR"
    (cd "$KINESIS_DIR" && npm install --silent --no-audit --no-fund --no-save "kinesis-local@$KINESIS_LOCAL_VERSION" >&2)
  fi
  if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    command -v python3 >/dev/null || { log "python3 is required"; exit 1; }
    log "installing moto==$MOTO_VERSION into $MOTO_VENV"
    rm -rf "$MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "moto[server,kinesis,sts,iam,s3,dynamodb]==$MOTO_VERSION" >&2
  fi
  # The Glue Schema Registry's reference Python serde frames the tests' Glue records.
  if ! "$MOTO_VENV/bin/python" -c 'import aws_schema_registry' 2>/dev/null; then
    log "installing aws-glue-schema-registry==$GLUE_SERDE_VERSION into $MOTO_VENV"
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "aws-glue-schema-registry==$GLUE_SERDE_VERSION" >&2
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL NAME PID: until anything answers HTTP at URL, or the process dies, or 60 s pass.
wait_http() {
  local url=$1 name=$2 pid=$3 deadline=$((SECONDS + 60))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)" != "000" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited while starting; its log:"; tail -n 20 "$LOG_DIR/$name.log" >&2 || true; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then log "$name did not answer at $url within 60 s"; exit 1; fi
    sleep 0.2
  done
}

# start_kinesis NAME CREATE_DURATION: starts kinesis-local on loopback and prints "PID PORT".
start_kinesis() {
  local name=$1 create_duration=$2 port tls_port
  port=$(free_port); tls_port=$(free_port)
  (cd "$KINESIS_DIR/node_modules/kinesis-local" &&
    KINESIS_MOCK_PLAIN_PORT=$port KINESIS_MOCK_TLS_PORT=$tls_port \
    CREATE_STREAM_DURATION=$create_duration DELETE_STREAM_DURATION=10ms \
    SPLIT_SHARD_DURATION=10ms MERGE_SHARDS_DURATION=10ms UPDATE_SHARD_COUNT_DURATION=10ms \
    REGISTER_STREAM_CONSUMER_DURATION=10ms DEREGISTER_STREAM_CONSUMER_DURATION=10ms \
    SHARD_LIMIT=${TRIBUTARY_KINESIS_SHARD_LIMIT:-500} LOG_LEVEL=WARN \
    exec node -r "$SCRIPT_DIR/loopback-preload.js" main.js >"$LOG_DIR/$name.log" 2>&1) &
  echo "$! $port"
}

# start_moto NAME: starts moto_server on loopback and prints "PID PORT".
start_moto() {
  local name=$1 port
  port=$(free_port)
  # Tests may record the requests moto receives (/moto-api/recorder/...); the recording stays with the logs.
  MOTO_RECORDER_FILEPATH="$LOG_DIR/$name.recording" \
    "$MOTO_VENV/bin/python" "$SCRIPT_DIR/moto_serialized.py" 127.0.0.1 "$port" >"$LOG_DIR/$name.log" 2>&1 &
  echo "$! $port"
}

up() {
  install
  mkdir -p "$LOG_DIR"
  if [ -s "$STATE_FILE" ]; then log "stopping emulators left from an earlier run"; down; fi
  local kinesis slow moto moto_auth
  read -r kinesis_pid kinesis_port < <(start_kinesis kinesis-local 10ms)
  read -r slow_pid slow_port < <(start_kinesis kinesis-local-slow 600s)
  read -r moto_pid moto_port < <(start_moto moto)
  read -r auth_pid auth_port < <(start_moto moto-auth)
  echo "$kinesis_pid $slow_pid $moto_pid $auth_pid" >"$STATE_FILE"
  wait_http "http://127.0.0.1:$kinesis_port/" kinesis-local "$kinesis_pid"
  wait_http "http://127.0.0.1:$slow_port/" kinesis-local-slow "$slow_pid"
  wait_http "http://127.0.0.1:$moto_port/moto-api/" moto "$moto_pid"
  wait_http "http://127.0.0.1:$auth_port/moto-api/" moto-auth "$auth_pid"
  log "up: kinesis-local :$kinesis_port, kinesis-local-slow :$slow_port, moto :$moto_port, moto-auth :$auth_port (logs in $LOG_DIR)"
  cat <<EXPORTS
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$kinesis_port
export AWS_ENDPOINT_URL_STS=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_IAM=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_GLUE=http://127.0.0.1:$moto_port
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test-access-key
export AWS_SECRET_ACCESS_KEY=test-secret-key
export AWS_EC2_METADATA_DISABLED=true
export TRIBUTARY_TEST_KINESIS_SLOW_ENDPOINT=http://127.0.0.1:$slow_port
export TRIBUTARY_TEST_MOTO_ENDPOINT=http://127.0.0.1:$moto_port
export TRIBUTARY_TEST_MOTO_AUTH_ENDPOINT=http://127.0.0.1:$auth_port
export TRIBUTARY_TEST_MOTO_PYTHON=$MOTO_VENV/bin/python
export TRIBUTARY_EMULATORS_STATE=$STATE_FILE
export TRIBUTARY_EMULATORS_PIDS="$kinesis_pid $slow_pid $moto_pid $auth_pid"
EXPORTS
}

down() {
  local pids=${TRIBUTARY_EMULATORS_PIDS:-}
  if [ -z "$pids" ] && [ -s "$STATE_FILE" ]; then pids=$(cat "$STATE_FILE"); fi
  [ -n "$pids" ] || { log "nothing to stop"; return 0; }
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$STATE_FILE"
  log "stopped $pids"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  install) install ;;
  *) echo "usage: $0 up|down|install" >&2; exit 2 ;;
esac
