#!/usr/bin/env bash
# Sessions per second with STARTTLS, one message per session, against smtpsh's scenario server
# (`smtpsh serve accept`: STARTTLS with a self-signed certificate) on loopback: smtpsh's engine
# (tests/bench/sessions.lua starttls, C sessions at once) beside Python's smtplib with
# starttls() (tests/bench/sessions_tls.py, C threads), against the same server in the same run,
# at each concurrency C (default: 50 and 500), and their ratio. Also how busy the server was:
# it runs on one thread, so near 100% of a core it, not the client, sets the pace.
# CPU time per session (each client's, and the server's while serving it) is printed too: on a
# busy machine it varies less than the rates. Only figures are printed; nothing is asserted.
#   tests/bench/sessions_tls.sh [TOTAL=5000] [C...=50 500]     (quick: sessions_tls.sh 500 50)
#   ROUNDS=5 tests/bench/sessions_tls.sh ...   each measurement 5 times, interleaved; medians
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 2
SMTPSH=${SMTPSH:-build/smtpsh}
total=${1:-5000}
rounds=${ROUNDS:-1}
shift || true
levels=("$@")
[[ ${#levels[@]} -gt 0 ]] || levels=(50 500)
[[ $total =~ ^[0-9]+$ && $total -gt 0 ]] || { echo "sessions_tls.sh: TOTAL must be a whole number > 0" >&2; exit 2; }
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 && $rounds -le 100 ]] || { echo "sessions_tls.sh: ROUNDS must be 1..100" >&2; exit 2; }
most=0
for c in "${levels[@]}"; do
  [[ $c =~ ^[0-9]+$ && $c -gt 0 && $c -le 2000 ]] || { echo "sessions_tls.sh: a concurrency must be 1..2000, got '$c'" >&2; exit 2; }
  (( c > most )) && most=$c
done
[[ -x $SMTPSH ]] || { echo "sessions_tls.sh: no executable at $SMTPSH; build first" >&2; exit 2; }
need=$((most + 200))
if (( $(ulimit -n) < need )); then
  ulimit -n "$need" 2>/dev/null || { echo "sessions_tls.sh: needs ulimit -n >= $need (hard limit $(ulimit -Hn))" >&2; exit 2; }
fi

tmp=$(mktemp -d)
server=
cleanup() {
  if [[ -n $server ]]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

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
[[ -n $port ]] || { echo "sessions_tls.sh: the scenario server did not start: $(cat "$tmp/server.err")" >&2; exit 1; }

# CPU seconds the server has used so far (utime + stime of /proc/PID/stat).
ticks=$(getconf CLK_TCK)
server_cpu() { awk -v t="$ticks" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$server/stat" 2>/dev/null || echo 0; }
# The rate in "... = 1234/s ..." and the CPU in "CPU 56 us" of a result line; the median.
rate() { sed -n 's/.* = \([0-9][0-9]*\)\/s.*/\1/p' <<<"$1" | head -n 1; }
cpu() { sed -n 's/.*CPU \([0-9][0-9]*\) us.*/\1/p' <<<"$1" | head -n 1; }
median() { printf '%s\n' "$@" | grep . | sort -n | awk '{ v[NR] = $1 } END { print NR ? (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) : 0 }'; }
# Runs a client and prints its line and the server's CPU meanwhile; sets $line and $served
# (server CPU us per session).
measure() {
  local cpu0 cpu1 t0 t1
  cpu0=$(server_cpu); t0=$(date +%s.%N)
  line=$("$@") || true
  t1=$(date +%s.%N); cpu1=$(server_cpu)
  echo "$line"
  served=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$total" 'BEGIN { printf "%.0f", (b - a) * 1e6 / n }')
  awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" -v u="$served" \
    'BEGIN { printf "  server: %.2f CPU s in %.2f s = %.0f%% of one core, %d us per session\n", b - a, e - s, 100 * (b - a) / (e - s), u }'
}

summary=()
for c in "${levels[@]}"; do
  r_ours=(); r_theirs=(); c_ours=(); c_theirs=(); s_ours=(); s_theirs=()
  for round in $(seq "$rounds"); do  # interleaved, so that machine noise hits both alike
    [[ $rounds -gt 1 ]] && echo "-- $c at once, round $round of $rounds"
    measure "$SMTPSH" tests/bench/sessions.lua "$port" "$total" "$c" starttls
    r_ours+=("$(rate "$line")"); c_ours+=("$(cpu "$line")"); s_ours+=("$served")
    measure /usr/bin/python3 tests/bench/sessions_tls.py "$port" "$total" "$c"
    r_theirs+=("$(rate "$line")"); c_theirs+=("$(cpu "$line")"); s_theirs+=("$served")
  done
  summary+=("$(awk -v c="$c" -v n="$rounds" -v a="$(median "${r_ours[@]}")" -v p="$(median "${r_theirs[@]}")" \
    -v ca="$(median "${c_ours[@]}")" -v cp="$(median "${c_theirs[@]}")" \
    -v sa="$(median "${s_ours[@]}")" -v sp="$(median "${s_theirs[@]}")" \
    'BEGIN { if (p > 0) printf "%4d at once, STARTTLS (median of %d): smtpsh %.0f/s, python smtplib %.0f/s: ratio %.2fx; client CPU per session %.0f us vs %.0f us; server CPU per session %.0f us vs %.0f us\n", c, n, a, p, a / p, ca, cp, sa, sp }')")
done
printf '%s\n' "${summary[@]}"
if [[ -s $tmp/server.err ]]; then
  echo "scenario server said ($(wc -l <"$tmp/server.err") lines), first lines:"
  head -n 5 "$tmp/server.err"
fi
