#!/usr/bin/env bash
# DNSSEC validation, timed on the signed test hierarchy (tests/peers/dnssec_zones.py, NSD on
# loopback): smtpsh validating every case ROUNDS times, with nothing cached (every DS, DNSKEY
# and signature fetched and checked again) and with validated zones cached, beside
# `drill -S -k ANCHOR` (ldns's own chase, a process per name) on the same names, and their
# ratio in validations per second.
#
#   tests/bench/dnssec.sh [ROUNDS=20]        (SMTPSH=path/to/smtpsh to pick another binary)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
rounds=${1:-20}
SMTPSH=${SMTPSH:-build/smtpsh}
[[ $rounds =~ ^[0-9]+$ && $rounds -gt 0 && $rounds -le 1000 ]] || { echo "dnssec.sh: ROUNDS must be 1..1000" >&2; exit 2; }
[[ -x $SMTPSH ]] || { echo "dnssec.sh: no executable at $SMTPSH; build first" >&2; exit 2; }
command -v drill >/dev/null || { echo "dnssec.sh: drill is missing (apt-get install ldnsutils)" >&2; exit 2; }

cleanup() {
  if [[ -n ${peer_pid:-} ]]; then kill "$peer_pid" 2>/dev/null; wait "$peer_pid" 2>/dev/null; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The fixture's stdin is a pipe from this script: it stops NSD if this script dies.
coproc PEER { exec /usr/bin/python3 tests/peers/dnssec_zones.py; }
peer_pid=$PEER_PID
declare -A info
for _ in 1 2 3 4; do
  read -t 30 -r key value <&"${PEER[0]}" || break
  info[$key]=$value
done
[[ -n ${info[PORT]:-} ]] || { echo "dnssec.sh: the signed hierarchy did not start" >&2; exit 1; }
server="127.0.0.1:${info[PORT]}"

out=$("$SMTPSH" tests/bench/dnssec.lua "$server" "${info[ANCHOR]}" "${info[CASES]}" "$rounds") || {
  echo "dnssec.sh: smtpsh failed: $out" >&2; exit 1; }
echo "$out" | sed 's/^/smtpsh /'

names=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["cases"]; print("\n".join(c["qname"]+" "+c["qtype"] for c in d.values()))' "${info[CASES]}")
count=0
start=$(date +%s.%N)
for ((r = 0; r < rounds; r++)); do
  while read -r name qtype; do
    timeout 20 drill -S -k "${info[ANCHOR]}" -p "${info[PORT]}" @127.0.0.1 "$name" "$qtype" >/dev/null 2>&1
    count=$((count + 1))
  done <<<"$names"
done
end=$(date +%s.%N)
drill_seconds=$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')
printf 'drill -S %d lookups %.3f seconds\n' "$count" "$drill_seconds"

cold=$(echo "$out" | awk '$1 == "cold" {print $2 / $4}')
warm=$(echo "$out" | awk '$1 == "warm" {print $2 / $4}')
awk -v cold="$cold" -v warm="$warm" -v n="$count" -v s="$drill_seconds" 'BEGIN {
  drill = n / s
  printf "validations/s: smtpsh cold %.0f, warm %.0f; drill -S %.0f; ratio cold %.2fx, warm %.2fx\n",
    cold, warm, drill, cold / drill, warm / drill }'
