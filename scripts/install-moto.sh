#!/usr/bin/env bash
# Installs moto's DynamoDB-compatible server into .tools/moto (project-local) if missing.
# Tests and `make dynamodb-local` call this; nothing is installed globally.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.tools/moto
version=5.2.5
if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$version')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$version"
fi
