#!/usr/bin/env bash
# A local DynamoDB-compatible server (moto) with the conversation table, for running the
# service against DynamoDB on a laptop:
#   make dynamodb-local          # serves http://127.0.0.1:${DYNAMODB_LOCAL_PORT:-8000}
# then, in another shell:
#   TABLE_NAME=tagbeez-conversations DYNAMODB_ENDPOINT=http://127.0.0.1:8000 \
#   AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local cargo run --profile local -- serve
set -euo pipefail
cd "$(dirname "$0")/.."
port="${DYNAMODB_LOCAL_PORT:-8000}"
table="${TABLE_NAME:-tagbeez-conversations}"
venv=.tools/moto
"$(dirname "$0")/install-moto.sh"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" &
server=$!
trap 'kill $server' EXIT INT TERM
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
  sleep 0.1
done
# The same table as template.yaml: on-demand, key conversation_id (S), TTL on expires_at.
AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1 \
"$venv/bin/python" - "$port" "$table" <<'PY'
import sys, boto3
port, table = sys.argv[1], sys.argv[2]
ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}")
ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                 AttributeDefinitions=[{"AttributeName": "conversation_id", "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": "conversation_id", "KeyType": "HASH"}])
ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
print(f"table {table} ready at http://127.0.0.1:{port} (Ctrl-C stops the server)")
PY
wait $server
