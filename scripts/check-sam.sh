#!/usr/bin/env bash
# Lints template.yaml offline: cfn-lint, then `sam validate` (SAM's own transform) and
# `sam validate --lint`. Any error or warning fails the script.
#
# No AWS account, credentials or network is needed:
# - cfn-lint, and `sam validate --lint` (which only runs cfn-lint in-process, with its own SAM
#   transform), read nothing from AWS; they only need a region name to pick the resource specs.
# - plain `sam validate` runs the SAM translator, which would ask IAM for managed policy ARNs
#   only when a function names a managed policy (this template names none). It still looks for
#   credentials on the way, so AWS_EC2_METADATA_DISABLED keeps botocore from probing the EC2
#   instance metadata endpoint for them.
# - SAM_CLI_TELEMETRY=0: no usage metrics sent. (SAM also asks PyPI for a newer version once a
#   week, after the command; offline that fails silently and changes no exit status.)
set -euo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/install-aws-tools.sh"
bin=.tools/aws/bin
region=us-east-1
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="$region" AWS_EC2_METADATA_DISABLED=true

# cfn-lint exits non-zero on errors (2) and warnings (4); informational findings (8) are not
# reported by default.
"$bin/cfn-lint" --regions "$region" -- template.yaml
echo "cfn-lint: template.yaml: no errors, no warnings"
"$bin/sam" validate --template-file template.yaml --region "$region"
# --lint fails on any cfn-lint match, warnings included.
"$bin/sam" validate --lint --template-file template.yaml --region "$region"

# cfn-lint checks a state machine definition against the Amazon States Language schema (rule
# E3601) only when it is inline, never in a DefinitionUri file. So each statemachine/*.asl.json
# is also linted inlined, as the Definition of a scratch AWS::StepFunctions::StateMachine whose
# DefinitionSubstitutions name its ${...} placeholders (as CloudFormation substitutes them).
# State references and payload paths are checked by infra's tests (asl-validator) and by
# tests/bulk_definition.rs.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for definition in statemachine/*.asl.json; do
  inlined="$scratch/$(basename "$definition" .asl.json).template.json"
  "$bin/python" - "$definition" "$inlined" <<'PY'
import json, re, sys

source, target = sys.argv[1], sys.argv[2]
with open(source, encoding="utf-8") as f:
    text = f.read()
names = sorted(set(re.findall(r"\$\{([A-Za-z0-9]+)\}", text)))
trust = {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
template = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [trust]}},
        },
        "StateMachine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                "StateMachineType": "STANDARD",
                "Definition": json.loads(text),
                "DefinitionSubstitutions": {name: f"placeholder-{name}" for name in names},
            },
        },
    },
}
with open(target, "w", encoding="utf-8") as f:
    json.dump(template, f, indent=1)
PY
  "$bin/cfn-lint" --regions "$region" -- "$inlined"
  echo "cfn-lint: $definition (inlined): no errors, no warnings"
done
