#!/usr/bin/env bash
# Bulk address verification against loopback, in one run: `smtpsh verify` on ADDRESSES
# addresses spread over DOMAINS domains (one NSD serving the zone tests/bench/verify_zone.py
# writes, Postfix's smtp-sink behind every MX), beside Postfix's C load generator smtp-source
# sending as many RCPTs (DOMAINS messages of ADDRESSES/DOMAINS recipients each) at the same
# concurrency to the same smtp-sink. Prints RCPTs a second (wall clock) of both, their ratio
# (target: smtpsh >= 0.7x smtp-source) and each one's peak RSS (target for smtpsh: < 200 MiB).
# smtpsh's rate counts one RCPT per address: its catch-all probe (one more RCPT and an RSET per
# domain) is not counted, nor smtp-source's DATA per message.
# Targets are reported as met or NOT met; they do not change the exit status.
#
#   tests/bench/verify.sh [--quick]
#     ADDRESSES=100000 DOMAINS=1000   the sizes (--quick: 2000 and 20, a few seconds)
#     CONCURRENCY=100 PER_DOMAIN=2    verify's --concurrency and --per-domain; smtp-source -s
#     LIMIT=900                       seconds either client may take before it is stopped
#     ROUNDS=3                        turns each client takes (--quick: 1); the best of each counts
#     SMTPSH=build/smtpsh             the binary
#     KEEP=DIR                        keep the inputs, verify's --json output and logs in DIR
#
# Exit 0 when both clients ran and verify answered every address, 1 when one failed, 2 when
# the benchmark could not run.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
SMTPSH=${SMTPSH:-build/smtpsh}
if [[ ${1:-} == --quick ]]; then
  addresses=${ADDRESSES:-2000} domains=${DOMAINS:-20}
elif [[ $# -eq 0 ]]; then
  addresses=${ADDRESSES:-100000} domains=${DOMAINS:-1000}
else
  sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2
fi
concurrency=${CONCURRENCY:-100} per_domain=${PER_DOMAIN:-2} limit=${LIMIT:-900}
rounds=${ROUNDS:-$([[ ${1:-} == --quick ]] && echo 1 || echo 3)}
fail() { echo "verify.sh: $*" >&2; exit 2; }
for name in addresses domains concurrency per_domain limit rounds; do
  [[ ${!name} =~ ^[1-9][0-9]{0,8}$ ]] || fail "${name^^} must be a whole number > 0"
done
((domains <= addresses)) || fail "DOMAINS must be at most ADDRESSES"
[[ -x $SMTPSH ]] || fail "no executable at $SMTPSH; build first"
for tool in /usr/sbin/smtp-sink /usr/sbin/smtp-source /usr/sbin/nsd /usr/bin/time; do
  [[ -x $tool ]] || fail "$tool is missing (./setup.sh --tests; /usr/bin/time: apt-get install time)"
done

tmp=$(mktemp -d)
cleanup() {
  if [[ -n ${client_pid:-} ]]; then kill "$client_pid" 2>/dev/null; wait "$client_pid" 2>/dev/null; fi
  if [[ -n ${sink_pid:-} ]]; then kill "$sink_pid" 2>/dev/null; wait "$sink_pid" 2>/dev/null; fi
  if [[ -n ${peer_pid:-} ]]; then kill "$peer_pid" 2>/dev/null; wait "$peer_pid" 2>/dev/null; fi
  if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP" && cp -r "$tmp"/. "$KEEP"/; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP  # so that the EXIT trap runs on these too

/usr/bin/python3 tests/bench/verify_zone.py "$tmp" "$addresses" "$domains" || exit 2

# NSD: the peer's stdin is a pipe from this script, so it also stops if this script dies.
coproc PEER { exec /usr/bin/python3 tests/peers/dns_peer.py nsd --zones "$tmp/zones" --no-rrl; }
peer_pid=$PEER_PID
read -t 30 -r word dns_port <&"${PEER[0]}" || true
[[ ${word:-} == PORT && ${dns_port:-} =~ ^[0-9]+$ ]] || fail "the NSD peer did not start"

# smtp-sink behind every MX (they all point to 127.0.0.1).
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=(); [[ $EUID -eq 0 ]] && user=(-u nobody)
/usr/sbin/smtp-sink "${user[@]}" -m $((concurrency * 2 + 56)) "127.0.0.1:$port" 1000 &
sink_pid=$!
up=0
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { up=1; break; }; sleep 0.1; done
((up)) || fail "smtp-sink did not listen on 127.0.0.1:$port"

now_us() { echo "${EPOCHREALTIME/./}"; }
rate() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.0f", n / (us / 1e6) }'; }
# measure NAME COMMAND...: runs it (at most LIMIT seconds) with stdout in $tmp/NAME.out and
# stderr in $tmp/NAME.err; sets rc, us (wall clock) and rss (peak, KiB; empty when unknown).
# In the background and waited for, so that a signal to this script stops it at once.
measure() {
  local name=$1 start
  shift
  start=$(now_us)
  timeout -k 5 "$limit" /usr/bin/time -f '%M' -o "$tmp/$name.rss" "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
  client_pid=$!
  wait "$client_pid"
  rc=$?
  client_pid=
  us=$(($(now_us) - start))
  rss=$(tail -n 1 "$tmp/$name.rss" 2>/dev/null)
  [[ $rss =~ ^[0-9]+$ ]] || rss=
}
status=0

# The two clients take turns, ROUNDS times: on a shared machine a neighbour's burst slows
# one run, so each one's best round is compared (both equally), and every round is printed.
verify_cmd=("$SMTPSH" verify --json --input "$tmp/addresses.txt" --concurrency "$concurrency"
  --per-domain "$per_domain" --resolver "127.0.0.1:$dns_port" --port "$port")
per_message=$(((addresses + domains - 1) / domains))
messages=$(((addresses + per_message - 1) / per_message))
rcpts=$((per_message * messages))
source_cmd=(/usr/sbin/smtp-source -s "$concurrency" -m "$messages" -r "$per_message" -M bench.test "127.0.0.1:$port")
echo "smtpsh:      ${verify_cmd[*]} >verify.out"
echo "smtp-source: ${source_cmd[*]}"
seconds() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1e6 }'; }
verify_us= verify_rss= source_us= source_rss=
for ((round = 1; round <= rounds && status == 0; round++)); do
  # smtpsh verify
  measure verify "${verify_cmd[@]}"
  answered=$(grep -c '"is_reachable":"\(safe\|risky\|invalid\)"' "$tmp/verify.out")
  lines=$(wc -l <"$tmp/verify.out")
  verdicts=$(grep -o '"is_reachable":"[a-z]*"' "$tmp/verify.out" | cut -d'"' -f4 | sort | uniq -c |
    awk '{ printf "%s%s %s", sep, $2, $1; sep = ", " }')
  if ((rc != 0 || lines != addresses || answered != addresses)); then
    status=1
    echo "smtpsh verify: exit $rc, $lines results for $addresses addresses, $answered answered; stderr:" >&2
    tail -n 5 "$tmp/verify.err" >&2
    break
  fi
  printf 'round %d: smtpsh verify %d addresses (%d domains) in %s s = %s RCPTs/s, peak RSS %s, %s at once (%s per domain); %s\n' \
    "$round" "$answered" "$domains" "$(seconds "$us")" "$(rate "$answered" "$us")" \
    "${rss:+$((rss / 1024)) MiB}" "$concurrency" "$per_domain" "${verdicts:-no results}"
  if [[ -z $verify_us ]] || ((us < verify_us)); then verify_us=$us; fi
  if [[ -n $rss ]] && { [[ -z $verify_rss ]] || ((rss > verify_rss)); }; then verify_rss=$rss; fi

  # smtp-source: as many RCPTs, DOMAINS messages (one a session) of ADDRESSES/DOMAINS each
  measure source "${source_cmd[@]}"
  if ((rc != 0)) || grep -qi 'fatal\|error\|warning' "$tmp/source.out" "$tmp/source.err"; then
    status=1
    echo "smtp-source: exit $rc; output:" >&2
    tail -n 5 "$tmp/source.out" "$tmp/source.err" >&2
    break
  fi
  printf 'round %d: smtp-source %d RCPTs (%d messages of %d) in %s s = %s RCPTs/s, peak RSS %s, %s at once\n' \
    "$round" "$rcpts" "$messages" "$per_message" "$(seconds "$us")" "$(rate "$rcpts" "$us")" \
    "${rss:+$((rss / 1024)) MiB}" "$concurrency"
  if [[ -z $source_us ]] || ((us < source_us)); then source_us=$us; fi
done
verify_rate=0 source_rate=0
if ((status == 0)); then
  verify_rate=$(rate "$addresses" "$verify_us") source_rate=$(rate "$rcpts" "$source_us")
  echo "best of $rounds: smtpsh verify $(seconds "$verify_us") s = $verify_rate RCPTs/s; smtp-source $(seconds "$source_us") s = $source_rate RCPTs/s"
fi

# Side by side -------------------------------------------------------------------------------
if ((status == 0 && source_rate > 0)); then
  awk -v a="$verify_rate" -v b="$source_rate" 'BEGIN {
    r = a / b; printf "ratio smtpsh/smtp-source: %.2fx (target >= 0.7x: %s)\n", r, (r >= 0.7 ? "met" : "NOT met") }'
else
  echo "ratio smtpsh/smtp-source: n/a"
fi
if [[ -n $verify_rss ]]; then
  awk -v kb="$verify_rss" 'BEGIN {
    printf "smtpsh peak RSS: %.1f MiB (target < 200 MiB: %s)\n", kb / 1024, (kb < 200 * 1024 ? "met" : "NOT met") }'
else
  echo "smtpsh peak RSS: n/a"; status=1
fi
exit "$status"
