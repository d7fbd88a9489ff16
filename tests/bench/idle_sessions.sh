#!/usr/bin/env bash
# Memory per idle SMTP session (target: at most 32 KiB): 1000 sessions held open against
# Postfix's smtp-sink on loopback, past EHLO, and the resident memory they add.
#   tests/bench/idle_sessions.sh [COUNT=1000]
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 2
SMTPSH=${SMTPSH:-build/smtpsh}
count=${1:-1000}
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=(); [[ $EUID -eq 0 ]] && user=(-u nobody)
/usr/sbin/smtp-sink "${user[@]}" -m $((count + 100)) "127.0.0.1:$port" $((count + 100)) &
sink=$!
trap 'kill $sink 2>/dev/null; wait $sink 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$SMTPSH" tests/bench/idle_sessions.lua "$port" "$count"
