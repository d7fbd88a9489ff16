#!/usr/bin/env bash
# Sessions per second against one smtp-sink on loopback, one message per session: smtpsh's
# engine (50 sessions at once) beside Postfix's C load generator smtp-source (-s 50), in one run.
#   tests/bench/sessions.sh [TOTAL=20000]
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 2
SMTPSH=${SMTPSH:-build/smtpsh}
total=${1:-20000}
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=(); [[ $EUID -eq 0 ]] && user=(-u nobody)
/usr/sbin/smtp-sink "${user[@]}" -m 200 "127.0.0.1:$port" 256 &
sink=$!
trap 'kill $sink 2>/dev/null; wait $sink 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$SMTPSH" tests/bench/sessions.lua "$port" "$total" 50 plain
"$SMTPSH" tests/bench/sessions.lua "$port" "$total" 50 pipeline
start=$(date +%s.%N)
/usr/sbin/smtp-source -s 50 -m "$total" "127.0.0.1:$port"
end=$(date +%s.%N)
awk -v n="$total" -v a="$start" -v b="$end" 'BEGIN { printf "smtp-source: %d sessions in %.2f s = %.0f/s, 50 at once\n", n, b - a, n / (b - a) }'
