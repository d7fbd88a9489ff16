#!/usr/bin/env bash
# Start-up time: the median of `smtpsh -e ''` beside `lua5.4 -e ''`, measured in the same run,
# interleaved so machine noise hits both alike. Target: at most 2x lua5.4, and under 5 ms.
#
#   tests/bench/startup.sh [path/to/smtpsh] [runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
smtpsh=${1:-build/smtpsh}
runs=${2:-300}
[[ -x "$smtpsh" ]] || { echo "startup.sh: no executable at $smtpsh; build first" >&2; exit 2; }
command -v lua5.4 >/dev/null || { echo "startup.sh: lua5.4 is missing; run ./setup.sh --tests" >&2; exit 2; }

/usr/bin/python3 - "$smtpsh" "$runs" <<'PY'
import statistics, subprocess, sys, time
smtpsh, runs = sys.argv[1], int(sys.argv[2])
commands = {"smtpsh": [smtpsh, "-e", ""], "lua5.4": ["lua5.4", "-e", ""]}
times = {name: [] for name in commands}
for _ in range(runs):
    for name, command in commands.items():
        started = time.perf_counter()
        subprocess.run(command, check=True)
        times[name].append(time.perf_counter() - started)
median = {name: statistics.median(values) * 1000 for name, values in times.items()}
ratio = median["smtpsh"] / median["lua5.4"]
print(f"startup median over {runs} runs: smtpsh {median['smtpsh']:.2f} ms, "
      f"lua5.4 {median['lua5.4']:.2f} ms, ratio {ratio:.2f}x "
      f"(target: <= 2x and < 5 ms: {'met' if ratio <= 2 and median['smtpsh'] < 5 else 'NOT met'})")
PY
