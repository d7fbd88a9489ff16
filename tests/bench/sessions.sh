#!/usr/bin/env bash
# Sessions per second against one smtp-sink on loopback, one message per session: smtpsh's
# engine (C sessions at once) beside Postfix's C load generator smtp-source (-s C), in one
# run, at each concurrency C (default: 50 and 500), and their ratio (target: smtpsh >= 1.0x).
# Only figures are printed; nothing is asserted about timing.
# CPU time per session is printed too: on a busy machine it varies less than the rates.
#   tests/bench/sessions.sh [TOTAL=20000] [C...=50 500]     (quick: sessions.sh 2000 50)
#   ROUNDS=5 tests/bench/sessions.sh ...   runs each measurement 5 times, interleaved, and
#   summarises the medians (default 1).
# With STARTTLS, beside Python's smtplib: tests/bench/sessions_tls.sh.
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 2
SMTPSH=${SMTPSH:-build/smtpsh}
total=${1:-20000}
rounds=${ROUNDS:-1}
shift || true
levels=("$@")
[[ ${#levels[@]} -gt 0 ]] || levels=(50 500)
[[ $total =~ ^[0-9]+$ && $total -gt 0 ]] || { echo "sessions.sh: TOTAL must be a whole number > 0" >&2; exit 2; }
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 && $rounds -le 100 ]] || { echo "sessions.sh: ROUNDS must be 1..100" >&2; exit 2; }
most=0
for c in "${levels[@]}"; do
  [[ $c =~ ^[0-9]+$ && $c -gt 0 && $c -le 5000 ]] || { echo "sessions.sh: a concurrency must be 1..5000, got '$c'" >&2; exit 2; }
  (( c > most )) && most=$c
done
[[ -x $SMTPSH ]] || { echo "sessions.sh: no executable at $SMTPSH; build first" >&2; exit 2; }
for tool in /usr/sbin/smtp-sink /usr/sbin/smtp-source; do
  [[ -x $tool ]] || { echo "sessions.sh: $tool is missing (apt-get install postfix)" >&2; exit 2; }
done
# Descriptors: each side holds C connections (the sink inherits this limit).
need=$((most + 200))
if (( $(ulimit -n) < need )); then
  ulimit -n "$need" 2>/dev/null || { echo "sessions.sh: needs ulimit -n >= $need (hard limit $(ulimit -Hn))" >&2; exit 2; }
fi

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=(); [[ $EUID -eq 0 ]] && user=(-u nobody)
# -m: sessions the sink serves at once (the rest wait in the accept queue); the last
# argument is the listen backlog. Both above the highest concurrency, so the sink never
# throttles the clients.
/usr/sbin/smtp-sink "${user[@]}" -m $((most + 100)) "127.0.0.1:$port" $((most + 100 > 256 ? most + 100 : 256)) &
sink=$!
trap 'kill $sink 2>/dev/null; wait $sink 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM HUP
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

# The rate in "... = 1234/s ..." and the CPU in "CPU 56 us" of a result line; the median.
rate() { sed -n 's/.* = \([0-9][0-9]*\)\/s.*/\1/p' <<<"$1" | head -n 1; }
cpu() { sed -n 's/.*CPU \([0-9][0-9]*\) us.*/\1/p' <<<"$1" | head -n 1; }
median() { printf '%s\n' "$@" | grep . | sort -n | awk '{ v[NR] = $1 } END { print NR ? (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) : 0 }'; }

source_run() {
  /usr/bin/python3 - "$total" "$1" "$port" <<'PY'
import resource, subprocess, sys, time
total, c, port = sys.argv[1:4]
started = time.perf_counter()
subprocess.run(["/usr/sbin/smtp-source", "-s", c, "-m", total, "127.0.0.1:" + port], check=True)
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime
print(f"smtp-source: {total} sessions in {seconds:.2f} s = {int(total) / seconds:.0f}/s, {c} at once, "
      f"CPU {cpu * 1e6 / int(total):.0f} us per session")
PY
}

# How busy the sink (one process) was while a client ran: near 100% of a core, it sets the pace.
ticks=$(getconf CLK_TCK)
sink_cpu() { awk -v t="$ticks" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$sink/stat" 2>/dev/null || echo 0; }
# Runs a client; prints its line and the sink's share of a core meanwhile; sets $line.
measure() {
  local cpu0 cpu1 t0 t1
  cpu0=$(sink_cpu); t0=$(date +%s.%N)
  line=$("$@") || true
  t1=$(date +%s.%N); cpu1=$(sink_cpu)
  echo "$line"
  awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" -v n="$total" \
    'BEGIN { printf "  smtp-sink: %.0f%% of one core, %.0f us per session\n", 100 * (b - a) / (e - s), (b - a) * 1e6 / n }'
}

summary=()
for c in "${levels[@]}"; do
  r_one=(); r_piped=(); r_ref=(); c_one=(); c_piped=(); c_ref=()
  for round in $(seq "$rounds"); do  # interleaved, so that machine noise hits all three alike
    [[ $rounds -gt 1 ]] && echo "-- $c at once, round $round of $rounds"
    measure "$SMTPSH" tests/bench/sessions.lua "$port" "$total" "$c" plain
    one=$line
    measure "$SMTPSH" tests/bench/sessions.lua "$port" "$total" "$c" pipeline
    piped=$line
    measure source_run "$c"
    ref=$line
    r_one+=("$(rate "$one")"); r_piped+=("$(rate "$piped")"); r_ref+=("$(rate "$ref")")
    c_one+=("$(cpu "$one")"); c_piped+=("$(cpu "$piped")"); c_ref+=("$(cpu "$ref")")
  done
  summary+=("$(awk -v c="$c" -v n="$rounds" -v a="$(median "${r_one[@]}")" -v p="$(median "${r_piped[@]}")" \
    -v r="$(median "${r_ref[@]}")" -v ca="$(median "${c_one[@]}")" -v cp="$(median "${c_piped[@]}")" \
    -v cr="$(median "${c_ref[@]}")" 'BEGIN { if (r > 0) printf "%4d at once (median of %d): smtpsh %.0f/s (pipelined %.0f/s), smtp-source %.0f/s: ratio %.2fx (pipelined %.2fx), target >= 1.0x; CPU per session %.0f us (pipelined %.0f us), smtp-source %.0f us\n", c, n, a, p, r, a / r, p / r, ca, cp, cr }')")
done
printf '%s\n' "${summary[@]}"
