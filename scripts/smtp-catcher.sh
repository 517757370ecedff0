#!/usr/bin/env bash
# A local SMTP catcher (aiosmtpd from PyPI) that keeps every mail in a
# Maildir, for `just up` and the tests.
#   smtp-catcher.sh python   prints a Python that has aiosmtpd (installs it if missing)
#   smtp-catcher.sh up       starts one on 127.0.0.1:1025, mails in .data/mail
#   smtp-catcher.sh down     stops it
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${TASKFLOW_DATA:-.data}"
python="$(command -v python3)"
ensure() {
  if ! "$python" -c 'import aiosmtpd' 2>/dev/null; then
    echo "installing aiosmtpd from PyPI" >&2
    "$python" -m pip install --quiet --disable-pip-version-check 'aiosmtpd>=1.4,<2' >&2
  fi
}
case "${1:-}" in
  python)
    ensure
    echo "$python"
    ;;
  up)
    ensure
    # aiosmtpd makes the Maildir (tmp, new, cur) when the folder is missing.
    mkdir -p "$DATA"
    if [ -f "$DATA/smtp.pid" ] && kill -0 "$(cat "$DATA/smtp.pid")" 2>/dev/null; then
      echo "SMTP catcher already running"
      exit 0
    fi
    nohup "$python" -m aiosmtpd -n -l 127.0.0.1:1025 -c aiosmtpd.handlers.Mailbox "$DATA/mail" \
      >"$DATA/smtp.log" 2>&1 &
    echo $! >"$DATA/smtp.pid"
    echo "SMTP catcher on smtp://127.0.0.1:1025; mails in $DATA/mail/new"
    ;;
  down)
    if [ -f "$DATA/smtp.pid" ]; then
      kill "$(cat "$DATA/smtp.pid")" 2>/dev/null || true
      rm -f "$DATA/smtp.pid"
    fi
    ;;
  *)
    echo "usage: $0 python|up|down" >&2
    exit 2
    ;;
esac
