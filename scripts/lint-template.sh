#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint` in every AuthMode: as it is
# (open, the default), and as deployed with AuthMode=jwt and AuthMode=cognito, by linting
# copies whose parameter defaults say so (the linters take no parameter values of their own).
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0
mkdir -p target
python3 - template.yaml target <<'PY'
import re, sys
text = open(sys.argv[1]).read()
modes = {
    "jwt": {
        "AuthMode": "jwt",
        "JwtIssuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",
        "JwtAudience": "example-client-id",
    },
    # With AlarmEmail: the alarm topic and its subscription exist.
    "cognito": {"AuthMode": "cognito", "AlarmEmail": "ops@example.com"},
}
for mode, defaults in modes.items():
    out = text
    for name, value in defaults.items():
        pattern = rf"(\n  {name}:\n(?:    .*\n)*?    Default: ).*"
        out, n = re.subn(pattern, rf"\g<1>{value}", out, count=1)
        if n != 1:
            sys.exit(f"template.yaml has no parameter {name} with a Default")
    open(f"{sys.argv[2]}/template-{mode}.yaml", "w").write(out)
PY
status=0
for template in template.yaml target/template-jwt.yaml target/template-cognito.yaml; do
  echo "-- $template"
  .venv/bin/cfn-lint "$template" || status=1
  .venv/bin/sam validate --lint --region us-east-1 --template-file "$template" || status=1
done
exit $status
