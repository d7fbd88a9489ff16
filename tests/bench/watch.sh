#!/usr/bin/env bash
# The schedule, memory and CPU of `smtpsh watch` with many targets, on loopback: TARGETS
# diagnose targets (connect, banner, EHLO, STARTTLS check, MAIL, RCPT and a second session),
# each its own Postfix smtp-sink on its own loopback address 127.1.X.Y (one port for all), probed
# every EVERY seconds with jitter JITTER for DURATION seconds. PTR look-ups go to 127.0.0.1:1
# (refused at once), no DNSBL is asked: nothing leaves loopback. tests/bench/watch_bench.py
# starts the sinks, writes the CONFIG.lua and does the sampling and the report.
#   schedule: from /targets at the end: the mean over targets of |mean_interval - every|
#     (seconds and % of every; what the jitter alone adds is shown beside it), the worst
#     target's mean_interval, runs against TARGETS * DURATION / EVERY, overruns, the mean and
#     the max lag (how late a start was against its due time);
#   memory: process_resident_memory_bytes and smtpsh_lua_memory_bytes from /metrics every
#     SAMPLE seconds, the growth from the 20 s mark to the end (steady memory: a small growth;
#     the range in between beside it, as the Lua collector makes it swing), RSS per target
#     (also over a watcher of one target, measured first);
#   CPU: process_cpu_seconds_total at the end / DURATION, the share of one core.
# The /metrics scrapes are work for the watcher too (with 1000 targets, 9 MiB of text, most of a
# second on the event loop, so starts due meanwhile are late): their time is shown, and the CPU
# without them. SAMPLE=30 disturbs less.
# Only figures are printed, ending with a block "watch benchmark: targets=N every=E duration=D".
#
#   tests/bench/watch.sh
#     TARGETS=1000 EVERY=10 DURATION=60 JITTER=0.1   the sizes (quick: TARGETS=200 DURATION=20)
#     SAMPLE=5                                       seconds between two /metrics samples
#     SMTPSH=build/smtpsh                            the binary
#     KEEP=DIR                                       keep the CONFIG.lua and logs in DIR
#
# Exit 0 when every target was probed and its last verdict was ok, 1 when not or when the
# watcher failed, 2 when the benchmark could not run.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
SMTPSH=${SMTPSH:-build/smtpsh}
targets=${TARGETS:-1000} every=${EVERY:-10} duration=${DURATION:-60} jitter=${JITTER:-0.1} sample=${SAMPLE:-5}
fail() { echo "watch.sh: $*" >&2; exit 2; }
[[ $# -eq 0 ]] || { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }
{ [[ $targets =~ ^[1-9][0-9]{0,3}$ ]] && ((targets <= 5000)); } || fail "TARGETS must be 1..5000 (one smtp-sink each, about 1 MiB apiece)"
[[ $every =~ ^[1-9][0-9]{0,4}$ ]] || fail "EVERY must be a whole number of seconds, 1 or more"
[[ $duration =~ ^[1-9][0-9]{0,5}$ ]] || fail "DURATION must be a whole number of seconds, 1 or more"
[[ $jitter =~ ^0?\.[0-9]+$|^0$ ]] || fail "JITTER must be a fraction below 1, e.g. 0.1"
[[ $sample =~ ^[1-9][0-9]{0,5}$ ]] || fail "SAMPLE must be a whole number of seconds, 1 or more"
[[ -x $SMTPSH ]] || fail "no executable at $SMTPSH; build first"
[[ -x /usr/sbin/smtp-sink ]] || fail "/usr/sbin/smtp-sink is missing (./setup.sh --tests, or apt-get install postfix)"
[[ -x /usr/bin/python3 ]] || fail "/usr/bin/python3 is missing"
# Descriptors: the watcher holds up to 256 probes at once (each one connection) and its HTTP.
need=600
if (($(ulimit -n) < need)); then
  ulimit -n "$need" 2>/dev/null || fail "needs ulimit -n >= $need (hard limit $(ulimit -Hn))"
fi
# Every process is bounded by this, whatever happens to this script.
limit=$((duration + 300))

tmp=$(mktemp -d)
watch_pid='' one_pid='' sinks_pid='' measure_pid=''
stop() {  # stop PID: SIGTERM, then SIGKILL after 7 s (timeout -k 5 kills its child first)
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 70); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
cleanup() {
  [[ -n $measure_pid ]] && stop "$measure_pid"
  [[ -n $one_pid ]] && stop "$one_pid"
  [[ -n $watch_pid ]] && stop "$watch_pid"
  [[ -n $sinks_pid ]] && stop "$sinks_pid"  # it stops the sinks (they die with it in any case)
  if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP" && cp -r "$tmp"/. "$KEEP"/; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP  # so that the EXIT trap runs on these too

# The sinks: the helper's stdin is a pipe from this script, so it also stops if this script dies.
echo "starting $targets smtp-sink on 127.1.X.Y ..."
coproc SINKS { exec /usr/bin/python3 tests/bench/watch_bench.py sinks "$tmp" "$targets" "$every" "$jitter" "$limit"; }
sinks_pid=$SINKS_PID
read -t 90 -r word sink_port <&"${SINKS[0]}" || true
[[ ${word:-} == READY && ${sink_port:-} =~ ^[0-9]+$ ]] || fail "the smtp-sink peers did not start"

# start_watch CONFIG NAME: a watcher in the background (bounded by timeout); sets $pid and $url.
start_watch() {
  local config=$1 name=$2
  : >"$tmp/$name.out"
  timeout -k 5 "$limit" "$SMTPSH" watch "$config" --listen 127.0.0.1:0 --quiet --resolver 127.0.0.1:1 \
    >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
  pid=$!
  url=
  for _ in $(seq 300); do
    url=$(sed -n 's|^serving \(http://127\.0\.0\.1:[0-9][0-9]*\)/ .*|\1|p' "$tmp/$name.out")
    [[ -n $url ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "watch.sh: smtpsh watch $config did not start: $(head -c 2000 "$tmp/$name.err")" >&2
  return 1
}

# A watcher of one target: the fixed part of the RSS, for the RSS per target.
start_watch "$tmp/one.lua" one || exit 1
one_pid=$pid
sleep 2
baseline=$(/usr/bin/python3 tests/bench/watch_bench.py rss "$url") || baseline=
stop "$one_pid"; one_pid=

command=("$SMTPSH" watch CONFIG.lua --listen 127.0.0.1:0 --quiet --resolver 127.0.0.1:1)
echo "${command[*]}   (CONFIG.lua: $targets targets 127.1.X.Y:$sink_port, every = $every, jitter = $jitter, options = {timeout = 5, dnsbl = {}})"
start_watch "$tmp/watch.lua" watch || exit 1
watch_pid=$pid
started=$EPOCHREALTIME
grep -o '([0-9]* targets)' "$tmp/watch.out"
# In the background and waited for, so that a signal to this script stops it at once.
timeout -k 5 $((duration + 120)) /usr/bin/python3 tests/bench/watch_bench.py measure "$url" "$targets" "$every" \
  "$jitter" "$duration" "$started" "$sample" "$baseline" &
measure_pid=$!
wait "$measure_pid"
status=$?
measure_pid=
if ! kill -0 "$watch_pid" 2>/dev/null; then
  echo "watch.sh: the watcher exited during the run: $(head -c 2000 "$tmp/watch.err")" >&2
  status=1
elif [[ -s $tmp/watch.err ]]; then
  echo "the watcher said ($(wc -l <"$tmp/watch.err") lines), first lines:"
  head -n 5 "$tmp/watch.err"
fi
((status <= 1)) || status=1
exit "$status"
