#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint` in both AuthModes: as it is
# (open, the default) and as deployed with AuthMode=jwt, by linting a copy whose
# parameter defaults say jwt (the linters take no parameter values of their own).
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0
jwt=target/template-jwt.yaml
mkdir -p target
python3 - template.yaml "$jwt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
defaults = {
    "AuthMode": "jwt",
    "JwtIssuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",
    "JwtAudience": "example-client-id",
}
for name, value in defaults.items():
    pattern = rf"(\n  {name}:\n(?:    .*\n)*?    Default: ).*"
    text, n = re.subn(pattern, rf"\g<1>{value}", text, count=1)
    if n != 1:
        sys.exit(f"template.yaml has no parameter {name} with a Default")
open(sys.argv[2], "w").write(text)
PY
status=0
for template in template.yaml "$jwt"; do
  echo "-- $template"
  .venv/bin/cfn-lint "$template" || status=1
  .venv/bin/sam validate --lint --region us-east-1 --template-file "$template" || status=1
done
exit $status
