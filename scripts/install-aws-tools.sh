#!/usr/bin/env bash
# SAM CLI and cfn-lint into .tools/aws: what scripts/check-sam.sh and `sam build`/`sam deploy`
# need, installed project-locally and only when the pinned versions are not already there.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.tools/aws
sam_version=1.170.0
cfn_lint_version=1.58.0
# One pip call for both: aws-sam-cli pins its own cfn-lint range (1.170.0: >=1.52,<1.59), so
# they must be resolved together.
if ! "$venv/bin/sam" --version 2>/dev/null | grep -qx "SAM CLI, version $sam_version" \
  || ! "$venv/bin/cfn-lint" --version 2>/dev/null | grep -qx "cfn-lint $cfn_lint_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "aws-sam-cli==$sam_version" "cfn-lint==$cfn_lint_version"
fi
