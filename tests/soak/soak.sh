#!/usr/bin/env bash
# The soak (tests/soak/soak.lua): one smtpsh client keeps SESSIONS SMTP sessions at once against
# a mix of faulty scenario servers (smtpsh serve, one process each) and Postfix's smtp-sink for
# SECONDS, and checks that its memory and open descriptors come back to their baseline.
#
#   tests/soak/soak.sh [--sessions N=5000] [--seconds S=60] [--warmup S=5] [--timeout S=3]
#                      [--nofile N] [--system-ca]
#
# --nofile N runs the client with `ulimit -n N` (below the concurrency): the connects over the
# limit must fail with err.kind "resource", every other session must end normally, and the run
# must end within its deadline. The servers get the hard limit (they hold every session too).
# The STARTTLS handshakes (accept, tls_old, tls_broken) use a one-certificate CA file made here:
# with the system's CA bundle (--system-ca) every handshake parses ~140 certificates (about 50 ms
# of CPU and 1 MB while it lasts), which alone saturates the client at these concurrencies.
# SMTPSH=path picks another binary. Only 127.0.0.1; every server is stopped on exit.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
SMTPSH=${SMTPSH:-build/smtpsh}
sessions=5000 seconds=60 warmup=5 timeout=3 nofile='' system_ca=''
usage() { echo "usage: tests/soak/soak.sh [--sessions N] [--seconds S] [--warmup S] [--timeout S] [--nofile N] [--system-ca]" >&2; exit 2; }
while (($#)); do
  case $1 in
    --system-ca) system_ca=1; shift ;;
    --sessions | --seconds | --warmup | --timeout | --nofile)
      [[ ${2:-} =~ ^[0-9]+$ && $2 -gt 0 ]] || { echo "soak.sh: $1 needs a whole number > 0" >&2; usage; }
      declare "${1#--}=$2"; shift 2 ;;
    *) usage ;;
  esac
done
[[ -x $SMTPSH ]] || { echo "soak.sh: no executable at $SMTPSH; build first" >&2; exit 2; }
[[ -x /usr/sbin/smtp-sink ]] || { echo "soak.sh: /usr/sbin/smtp-sink is missing (./setup.sh --tests)" >&2; exit 2; }

hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
# The servers hold all the sessions between them, plus the listening sockets and slack.
server_nofile=$((sessions * 2 + 1024))
((server_nofile > hard)) && server_nofile=$hard
client_nofile=${nofile:-$server_nofile}
if [[ -z $nofile ]] && ((sessions + 64 > client_nofile)); then
  echo "soak.sh: the descriptor limit ($client_nofile) is below $sessions sessions; raise it or use --nofile" >&2
  exit 2
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    # Bounded: SIGKILL for a server that has not gone after 5 s.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP  # so that the EXIT trap runs on these too

# NAME [--set K=V...]: starts `smtpsh serve NAME` on a free port; appends NAME=127.0.0.1:PORT.
targets=()
start_scenario() {
  local name=$1; shift
  (ulimit -n "$server_nofile" && exec "$SMTPSH" serve "$name" --listen 127.0.0.1:0 "$@") \
    >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
  pids+=($!)
  local port=
  : >"$tmp/$name.out"
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p' "$tmp/$name.out")
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n $port ]] || { echo "soak.sh: scenario $name did not start: $(cat "$tmp/$name.err")" >&2; exit 1; }
  targets+=("$name=127.0.0.1:$port")
}

start_scenario accept
start_scenario busy
start_scenario drop_at
start_scenario drop_before_banner
start_scenario greylist --set delay=2
start_scenario rate_limit --set sessions=200
start_scenario reject
start_scenario slow --set delay=$((timeout * 2))   # the client gives up first: a timeout
start_scenario tls_broken
start_scenario tls_old

# smtp-sink for the good sessions (three shares of the mix).
sink_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=(); ((EUID == 0)) && user=(-u nobody)
(ulimit -n "$server_nofile" && exec /usr/sbin/smtp-sink "${user[@]}" -m $((sessions + 100)) "127.0.0.1:$sink_port" 4096) \
  >"$tmp/sink.out" 2>&1 </dev/null &
pids+=($!)
up=
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$sink_port") 2>/dev/null && { up=1; break; }; sleep 0.1; done
[[ -n $up ]] || { echo "soak.sh: smtp-sink did not start: $(cat "$tmp/sink.out")" >&2; exit 1; }
targets+=("sink=127.0.0.1:$sink_port*3")

extra=(); [[ -n $nofile ]] && extra=(--expect-resource)
if [[ -z $system_ca ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=soak.test -days 2 \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>"$tmp/openssl.log" ||
    { echo "soak.sh: openssl could not make the CA file: $(cat "$tmp/openssl.log")" >&2; exit 1; }
  extra+=(--ca-file "$tmp/ca.pem")
fi
# The client's own deadline: both phases, their drains (9 steps of TIMEOUT each), and slack.
deadline=$((warmup + seconds + 2 * (9 * timeout + 10) + 30))
echo "soak.sh: client ulimit -n $client_nofile, servers $server_nofile; deadline ${deadline} s" >&2
start=$EPOCHREALTIME
(ulimit -n "$client_nofile" && exec "$SMTPSH" tests/soak/soak.lua \
  --sessions "$sessions" --seconds "$seconds" --warmup "$warmup" --timeout "$timeout" "${extra[@]}" \
  "${targets[@]}") &
client=$!
# The watchdog: kills the client at its deadline, and meanwhile looks at its descriptors every
# 0.5 s (the client counts its own with a child process, which it cannot start while it sits at
# its descriptor limit).
(
  max=0
  for _ in $(seq $((deadline * 2))); do
    [[ -d /proc/$client/fd ]] || exit 0
    n=$(ls "/proc/$client/fd" 2>/dev/null | wc -l)
    ((n > max)) && max=$n && echo "$max" >"$tmp/fd_peak"
    sleep 0.5
  done
  touch "$tmp/killed"
  kill -KILL "$client" 2>/dev/null
) &
watchdog=$!
wait "$client"
status=$?
kill "$watchdog" 2>/dev/null; wait "$watchdog" 2>/dev/null
elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
echo "  client fds peak (seen by soak.sh)   $(cat "$tmp/fd_peak" 2>/dev/null || echo n/a); the client ran ${elapsed} s"
if [[ -e $tmp/killed ]]; then
  echo "FAIL the client did not finish within its deadline of ${deadline} s (killed): a hang"
  status=1
fi
# The scenario servers report a session's Lua error on stderr: none is expected.
for f in "$tmp"/*.err; do
  if [[ -s $f ]]; then
    echo "FAIL scenario server $(basename "$f" .err) wrote to stderr: $(head -c 400 "$f")"
    status=1
  fi
done
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then
    echo "FAIL server ${targets[$i]:-smtp-sink} exited during the soak"
    status=1
  fi
done
exit "$status"
