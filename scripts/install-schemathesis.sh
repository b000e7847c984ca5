#!/usr/bin/env bash
# Installs schemathesis (PyPI) into .tools/schemathesis (project-local) if it is missing or not
# the pinned version; every transitive package is pinned by scripts/schemathesis-constraints.txt.
# scripts/schemathesis.sh calls this; nothing is installed globally.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.tools/schemathesis
version=4.32.5
constraints=scripts/schemathesis-constraints.txt
stamp="$venv/.installed"
want="schemathesis==$version $(sha256sum "$constraints" | cut -d' ' -f1)"
if [[ -x "$venv/bin/st" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
  && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$version')" 2>/dev/null; then
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" -c "$constraints"
echo "$want" > "$stamp"
