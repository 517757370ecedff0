#!/usr/bin/env bash
# Prints the path of a schemathesis 4 command, installing it from PyPI into
# the Python environment when there is none (for the OpenAPI fuzz test).
set -euo pipefail
scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
for candidate in "${SCHEMATHESIS_BIN:-}" "$scripts/schemathesis" "$(command -v schemathesis || true)"; do
  [ -n "$candidate" ] && [ -x "$candidate" ] || continue
  if "$candidate" --version 2>/dev/null | grep -q 'version 4\.'; then echo "$candidate"; exit 0; fi
done
echo "installing schemathesis from PyPI" >&2
python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5' >&2
echo "$scripts/schemathesis"
