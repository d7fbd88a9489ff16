#!/usr/bin/env bash
# Memory per idle SMTP session: COUNT sessions held open on loopback and the resident memory
# they add to smtpsh (tests/bench/idle_sessions.lua).
#   plain (target: at most 32 KiB): past EHLO, against Postfix's smtp-sink;
#   --starttls (target: at most 96 KiB): past STARTTLS (no certificate check) and the EHLO
#     after it, against smtpsh's scenario server (`smtpsh serve accept`: STARTTLS with a
#     self-signed certificate; smtp-sink has no TLS), whose own memory is shown too.
# Only figures are printed; nothing is asserted.
#   tests/bench/idle_sessions.sh [--starttls] [COUNT=1000]     (release figures: COUNT=10000)
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 2
SMTPSH=${SMTPSH:-build/smtpsh}
mode=plain
if [[ ${1:-} == --starttls ]]; then mode=starttls; shift; fi
count=${1:-1000}
[[ $count =~ ^[0-9]+$ && $count -gt 0 && $count -le 100000 ]] || { echo "idle_sessions.sh: COUNT must be 1..100000" >&2; exit 2; }
[[ -x $SMTPSH ]] || { echo "idle_sessions.sh: no executable at $SMTPSH; build first" >&2; exit 2; }
# Descriptors: the client and the server (which inherits this limit) each hold COUNT.
need=$((count + 200))
if (( $(ulimit -n) < need )); then
  ulimit -n "$need" 2>/dev/null || { echo "idle_sessions.sh: needs ulimit -n >= $need (hard limit $(ulimit -Hn)); try a smaller COUNT" >&2; exit 2; }
fi

tmp=$(mktemp -d)
server=
cleanup() {
  if [[ -n $server ]]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [[ $mode == plain ]]; then
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  user=(); [[ $EUID -eq 0 ]] && user=(-u nobody)
  # The backlog is capped by net.core.somaxconn; the client opens 200 at a time.
  /usr/sbin/smtp-sink "${user[@]}" -m $((count + 100)) "127.0.0.1:$port" $((count + 100)) &
  server=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  "$SMTPSH" tests/bench/idle_sessions.lua "$port" "$count" plain
else
  : >"$tmp/server.out"  # before the server starts: the loop below reads it at once
  "$SMTPSH" serve accept --listen 127.0.0.1:0 >"$tmp/server.out" 2>"$tmp/server.err" &
  server=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$tmp/server.out" || true)
    [[ -n $port ]] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $port ]] || { echo "idle_sessions.sh: the scenario server did not start: $(cat "$tmp/server.err")" >&2; exit 1; }
  "$SMTPSH" tests/bench/idle_sessions.lua "$port" "$count" starttls 200 "$server"
  if [[ -s $tmp/server.err ]]; then
    echo "scenario server said ($(wc -l <"$tmp/server.err") lines), first lines:"
    head -n 5 "$tmp/server.err"
  fi
fi
