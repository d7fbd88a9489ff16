#!/usr/bin/env bash
# MX look-ups per second against a real DNS server (NSD, rate limiting off) on 127.0.0.1:
# smtpsh's DNS engine with 1000 look-ups in flight (tests/bench/dns_mx.lua), beside a loop of
# `drill` processes one after another, in the same run, and their ratio; plus dnsperf's
# queries per second (1000 in flight too) as a reference when it is installed, and smtpsh's
# ratio to it: what the server can answer, against what smtpsh gets from it. Each part runs
# SECONDS seconds.
#
#   tests/bench/dns_mx.sh [SECONDS=5]        (SMTPSH=path/to/smtpsh to pick another binary)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
seconds=${1:-5}
SMTPSH=${SMTPSH:-build/smtpsh}
max_drill=100000
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "dns_mx.sh: SECONDS must be a whole number > 0" >&2; exit 2; }
[[ -x $SMTPSH ]] || { echo "dns_mx.sh: no executable at $SMTPSH; build first" >&2; exit 2; }
command -v drill >/dev/null || { echo "dns_mx.sh: drill is missing (apt-get install ldnsutils)" >&2; exit 2; }

tmp=$(mktemp -d)
cleanup() {
  if [[ -n ${peer_pid:-} ]]; then kill "$peer_pid" 2>/dev/null; wait "$peer_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP  # so that the EXIT trap runs on these too

# The peer's stdin is a pipe from this script: it also stops NSD if this script dies.
coproc PEER { exec /usr/bin/python3 tests/peers/dns_peer.py nsd --no-rrl; }
peer_pid=$PEER_PID
read -t 15 -r word port <&"${PEER[0]}" || true
[[ ${word:-} == PORT && ${port:-} =~ ^[0-9]+$ ]] || { echo "dns_mx.sh: the NSD peer did not start" >&2; exit 1; }

status=0
now_us() { echo "${EPOCHREALTIME/./}"; }

# smtpsh
line=$("$SMTPSH" tests/bench/dns_mx.lua "$port" "$seconds" 1000) || status=1
echo "${line:-smtpsh: the benchmark failed}"
smtpsh_rate=$(sed -n 's/.* = \([0-9.]*\)\/s .*/\1/p' <<<"${line:-}")

# drill, one process after another
ok=0 i=0 start=$(now_us)
deadline=$((start + seconds * 1000000))
while ((i < max_drill)) && (($(now_us) < deadline)); do
  i=$((i + 1))
  if out=$(drill -p "$port" @127.0.0.1 MX "bench$(((i - 1) % 1000 + 1)).example.test" 2>&1) &&
    [[ $out == *$'\tMX\t10 mx1.example.test.'* ]]; then ok=$((ok + 1)); fi
done
elapsed_us=$(($(now_us) - start))
drill_rate=$(awk -v n="$ok" -v us="$elapsed_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
printf 'drill loop: %d look-ups in %.2f s = %s/s (%d failed)\n' "$ok" \
  "$(awk -v us="$elapsed_us" 'BEGIN { print us / 1e6 }')" "$drill_rate" $((i - ok))
((ok == i && ok > 0)) || status=1

if [[ -n $smtpsh_rate && $drill_rate -gt 0 ]]; then
  awk -v a="$smtpsh_rate" -v b="$drill_rate" 'BEGIN { printf "ratio smtpsh/drill: %.1f\n", a / b }'
else
  echo "ratio smtpsh/drill: n/a"; status=1
fi

# dnsperf, as a reference for what the server can answer
if command -v dnsperf >/dev/null; then
  for n in $(seq 1 1000); do echo "bench$n.example.test MX"; done >"$tmp/queries"
  qps=$(dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries" -l "$seconds" -q 1000 | grep 'Queries per second') || status=1
  echo "dnsperf (1000 in flight): ${qps:-failed}" | tr -s ' '
  dnsperf_rate=$(awk '{ print $NF }' <<<"${qps:-}")
  if [[ -n $smtpsh_rate && ${dnsperf_rate:-0} != 0 ]]; then
    awk -v a="$smtpsh_rate" -v b="$dnsperf_rate" 'BEGIN { printf "ratio smtpsh/dnsperf: %.2f\n", a / b }'
  else
    echo "ratio smtpsh/dnsperf: n/a"; status=1
  fi
else
  echo "dnsperf: not installed (apt-get install dnsperf)"
fi
exit "$status"
