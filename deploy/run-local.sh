#!/usr/bin/env bash
# `make run`: a local broker (unless KAFKA_BOOTSTRAP_SERVERS names one), the detection worker with the demo
# producer, and the explorer. The terminal shows alerts and a summary every 30 s; the full log goes to a
# file. Ctrl-C and SIGTERM stop everything this script started, the broker last.
#
# Usage: deploy/run-local.sh KAFKA_LOCAL_COMMAND...   (the Makefile passes its kafka_local.py command line)
# Environment: VENV (.venv), KAFKA_DATA (.kafka), KAFKA_PORT (9092), UI_PORT (8080).
set -uo pipefail

VENV=${VENV:-.venv}
KAFKA_DATA=${KAFKA_DATA:-.kafka}
KAFKA_PORT=${KAFKA_PORT:-9092}
UI_PORT=${UI_PORT:-8080}
KAFKA=("$@")
LOG="$KAFKA_DATA/anomstream.log"
pids=()
broker=0

# 1. children first (SIGTERM: each finishes its batch and commits), 2. wait for them, 3. the broker.
cleanup() {
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
	if [ "$broker" = 1 ]; then "${KAFKA[@]}" down; fi
}
trap cleanup EXIT
# A trapped signal interrupts `wait` below at once; exiting runs cleanup (the EXIT trap).
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$KAFKA_DATA"
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
	"${KAFKA[@]}" up || exit 1
	broker=1
	export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT"
fi
secret() { # file: a random hex secret, made once and kept private
	test -s "$1" || (umask 077 && "$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(32))' >"$1")
}
if [ -z "${ANOMSTREAM_STATE__HMAC_KEY:-}${ANOMSTREAM_STATE__HMAC_KEY_FILE:-}" ]; then
	secret "$KAFKA_DATA/state-hmac.key"
	export ANOMSTREAM_STATE__HMAC_KEY_FILE="$KAFKA_DATA/state-hmac.key"
fi
if [ -z "${ANOMSTREAM_UI__FEEDBACK_TOKEN:-}${ANOMSTREAM_UI__FEEDBACK_TOKEN_FILE:-}" ]; then
	secret "$KAFKA_DATA/ui-token"
	export ANOMSTREAM_UI__FEEDBACK_TOKEN_FILE="$KAFKA_DATA/ui-token"
fi
# The explorer plots the score stream, with the band each event was judged against.
export ANOMSTREAM_TOPICS__SCORES="${ANOMSTREAM_TOPICS__SCORES:-anomstream.scores}"
export ANOMSTREAM_WORKER__SCORE_BANDS="${ANOMSTREAM_WORKER__SCORE_BANDS:-true}"

"$VENV/bin/anomstream" create-topics >>"$LOG" 2>&1 || {
	echo "make run: creating topics failed; see $LOG" >&2
	exit 1
}
"$VENV/bin/anomstream" ui --port "$UI_PORT" >>"$LOG" 2>&1 &
pids+=($!)
"$VENV/bin/anomstream" run --demo --print-alerts 2>>"$LOG" &
worker=$!
pids+=("$worker")
echo "anomstream is running: alerts below, a summary every 30 s; Ctrl-C stops everything"
echo "  explorer  http://127.0.0.1:$UI_PORT/   (feedback token: ${ANOMSTREAM_UI__FEEDBACK_TOKEN_FILE:-from ANOMSTREAM_UI__FEEDBACK_TOKEN})"
echo "  metrics   http://127.0.0.1:${ANOMSTREAM_METRICS__PORT:-9108}/metrics"
echo "  full log  $LOG"
wait "$worker"
status=$?
if [ "$status" -ne 0 ]; then
	echo "make run: the worker exited with $status; the end of $LOG:" >&2
	tail -n 20 "$LOG" >&2
fi
exit "$status"
