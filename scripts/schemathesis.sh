#!/usr/bin/env bash
# The OpenAPI document is the contract; schemathesis (PyPI, pinned by install-schemathesis.sh)
# proves it. Starts the local server (target/local/tagbeez, in-memory store) on a free loopback
# port, waits for /health, then runs every check (`--checks all`) in every phase (examples,
# coverage, fuzzing, and the stateful phase, which follows the document's links), positive and
# negative data, against GET /openapi.json. The server is stopped however the run ends; the
# exit code is non-zero on any failure, error, or when the overall time bound is hit.
#
# Settings (environment):
#   MAX_EXAMPLES  test cases per operation and phase (default 100)
#   MAX_SECONDS   overall bound on the schemathesis run (default 600)
#   SEED          the generator's seed (default 20261202, so `make test` is reproducible);
#                 SEED=random for a new one each run (printed, to reproduce it)
#   REPORT_DIR    server log and JUnit report (default target/schemathesis)
#   Any other server setting (e.g. MAX_MESSAGE_CHARS) is passed to the server as usual.
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples=${MAX_EXAMPLES:-100}
max_seconds=${MAX_SECONDS:-600}
report_dir=${REPORT_DIR:-target/schemathesis}

scripts/install-schemathesis.sh
# TAGBEEZ_PREBUILT=1 (make test): the server is built already and cargo is left alone.
[ -n "${TAGBEEZ_PREBUILT:-}" ] || cargo build --profile local --bin tagbeez --quiet
mkdir -p "$report_dir"
report_dir=$(cd "$report_dir" && pwd)
log="$report_dir/server.log"

server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A port found free can be taken before the server binds it: then try another.
port=""
for _ in 1 2 3; do
  candidate=$(free_port)
  env -u TABLE_NAME -u DYNAMODB_ENDPOINT HOST=127.0.0.1 PORT="$candidate" \
    target/local/tagbeez serve >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do
    if curl -fsS --max-time 2 "http://127.0.0.1:$candidate/health" >/dev/null 2>&1; then
      port=$candidate
      break 2
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  stop_server
done
if [[ -z "$port" ]]; then
  echo "schemathesis.sh: the server did not become healthy; its log ($log):" >&2
  cat "$log" >&2
  exit 1
fi

seed=${SEED:-20261202}
seed_args=()
if [[ "$seed" != random ]]; then
  seed_args=(--seed "$seed")
fi

echo "schemathesis.sh: http://127.0.0.1:$port/openapi.json, --max-examples $max_examples, bound ${max_seconds}s"
started=$(date +%s)
status=0
# From the report folder: schemathesis and hypothesis keep their caches in the working directory.
st="$PWD/.tools/schemathesis/bin/st"
# Per-operation settings (what the document cannot say): scripts/schemathesis.toml.
config="$PWD/scripts/schemathesis.toml"
cd "$report_dir"
# Every check but one: `use_after_free` (ST301) expects a deleted resource to stay gone, but a
# conversation is created by POST /classify-conversation with a client-chosen id, so a POST
# after the DELETE legitimately starts it again, and a later GET finds it. schemathesis then
# reports DELETE -> POST -> GET 200 as a use after free (seen with seed 20261202; the server log
# shows the POST in between). The same class of false positive is schemathesis issues #3582 and
# #4286 (fixed there for PUT only). tests/api.rs (`get_and_delete_conversation`) checks that a
# deleted conversation is a 404 until it is written again.
timeout --signal=INT --kill-after=30 "$max_seconds" \
  "$st" --no-color --config-file "$config" run "http://127.0.0.1:$port/openapi.json" \
  --checks all \
  --exclude-checks use_after_free \
  --phases examples,coverage,fuzzing,stateful \
  --mode all \
  --max-examples "$max_examples" \
  --workers 1 \
  --request-timeout 30 \
  --generation-database none \
  --report junit --report-dir . \
  "${seed_args[@]}" || status=$?
elapsed=$(($(date +%s) - started))

if [[ $status -eq 124 || $status -eq 137 ]]; then
  echo "schemathesis.sh: FAILED: not finished within ${max_seconds}s" >&2
elif [[ $status -ne 0 ]]; then
  echo "schemathesis.sh: FAILED (exit $status) in ${elapsed}s; server log: $log" >&2
else
  echo "schemathesis.sh: passed in ${elapsed}s"
fi
exit "$status"
