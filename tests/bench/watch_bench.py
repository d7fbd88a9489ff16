#!/usr/bin/python3
"""The helper of tests/bench/watch.sh: the SMTP peers and the CONFIG.lua of `smtpsh watch`, and
the sampling and report while it runs.

    /usr/bin/python3 tests/bench/watch_bench.py sinks DIR TARGETS EVERY JITTER LIMIT
        Starts TARGETS Postfix smtp-sink processes, one per target, each on its own loopback
        address 127.1.X.Y (all of 127/8 is loopback on Linux) and one port P (free on every
        address), and writes DIR/watch.lua (the TARGETS targets "127.1.X.Y:P", probe diagnose,
        every EVERY, jitter JITTER, options {timeout = 5, dnsbl = {}}) and DIR/one.lua (the
        first target alone). Prints "READY P" once every sink listens, then waits until its
        stdin closes, LIMIT seconds pass or a signal comes, and stops the sinks. Each sink also
        gets SIGTERM when this process dies (PR_SET_PDEATHSIG), however it dies.
    /usr/bin/python3 tests/bench/watch_bench.py rss URL
        Prints process_resident_memory_bytes from URL/metrics.
    /usr/bin/python3 tests/bench/watch_bench.py measure URL TARGETS EVERY JITTER DURATION START
                                                        SAMPLE [BASELINE_RSS]
        From START (Unix time, when the watcher began) to START + DURATION: /metrics every
        SAMPLE seconds; at START + DURATION /targets, then /metrics a last time; prints the
        series and the figures.
        Exit 0 when every target was probed and its last verdict was ok, 1 otherwise.
"""

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request

SINK = "/usr/sbin/smtp-sink"
STEADY_FROM = 20  # the memory growth is measured from this mark to the end
MIB = 1024 * 1024


def address(i):
    """The loopback address of target i (0-based): 127.1.0.1 ... 127.1.0.250, 127.1.1.1 ..."""
    return "127.1.%d.%d" % (i // 250, i % 250 + 1)


def free_port():
    """A port no socket uses on any address: a bind to the wildcard fails when one does."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def listening(port):
    """How many IPv4 sockets listen on `port` (state 0A in /proc/net/tcp)."""
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                count += 1
    return count


def lua_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path, targets, every, jitter):
    with open(path, "w") as f:
        f.write("-- written by tests/bench/watch_bench.py\nreturn {\n")
        f.write("  every = %s, jitter = %s,\n" % (every, jitter))
        f.write("  options = { timeout = 5, dnsbl = {} },\n  targets = {\n")
        for target in targets:
            f.write("    %s,\n" % lua_string(target))
        f.write("  },\n}\n")


def sinks(directory, count, every, jitter, limit):
    libc = ctypes.CDLL(None, use_errno=True)

    def die_with_parent():
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    log = open(os.path.join(directory, "sinks.log"), "ab")
    children = []
    status = 0
    try:
        for i in range(count):
            if stopping:
                return 130
            children.append(subprocess.Popen(
                [SINK] + user + ["-m", "64", "%s:%d" % (address(i), port), "64"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent))
        deadline = time.monotonic() + 60
        while listening(port) < count:
            dead = [c for c in children if c.poll() is not None]
            if dead or stopping or time.monotonic() > deadline:
                log.flush()
                with open(os.path.join(directory, "sinks.log"), "rb") as f:
                    said = f.read()[-2000:].decode(errors="replace")
                sys.stderr.write("watch_bench.py: %d of %d smtp-sink listen on port %d (%d exited)%s\n"
                                 % (listening(port), count, port, len(dead), ": " + said if said else ""))
                return 1
            time.sleep(0.1)
        targets = ["%s:%d" % (address(i), port) for i in range(count)]
        write_config(os.path.join(directory, "watch.lua"), targets, every, jitter)
        write_config(os.path.join(directory, "one.lua"), targets[:1], every, jitter)
        sys.stdout.write("READY %d\n" % port)
        sys.stdout.flush()
        # Until stdin closes (the script is gone), LIMIT seconds or a signal.
        deadline = time.monotonic() + limit
        while not stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                ready, _, _ = select.select([sys.stdin], [], [], min(left, 1.0))
            except InterruptedError:
                continue
            if ready and not os.read(sys.stdin.fileno(), 4096):
                break
        dead = [c for c in children if c.poll() is not None]
        if dead:
            sys.stderr.write("watch_bench.py: %d smtp-sink exited before the end\n" % len(dead))
            status = 1
    finally:
        for c in children:
            if c.poll() is None:
                c.terminate()
        deadline = time.monotonic() + 5
        for c in children:
            try:
                c.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.kill()
                c.wait()
    return status


def get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def metric_values(text):
    """The samples without labels, and the lag histogram's buckets."""
    values, lag = {}, {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("smtpsh_watch_schedule_lag_seconds_bucket{"):
            lag[name.split('le="')[1].split('"')[0]] = float(value)
        elif "{" not in name:
            values[name] = float(value)
    return values, lag


def scrape(url):
    started = time.perf_counter()
    text = get(url + "/metrics")
    seconds = time.perf_counter() - started
    values, lag = metric_values(text)
    return {"values": values, "lag": lag, "seconds": seconds, "bytes": len(text.encode())}


def measure(url, targets, every, jitter, duration, start, sample, baseline_rss):
    samples = []  # (mark, scrape)
    marks = list(range(sample, int(duration) + 1, sample))
    if not marks or marks[-1] < duration:
        marks.append(duration)
    report, read_at = None, None
    for mark in marks:
        left = start + mark - time.time()
        if left > 0:
            time.sleep(left)
        if mark == marks[-1]:  # the schedule first, at DURATION; a scrape would delay it
            read_at = time.time() - start
            report = json.loads(get(url + "/targets"))
        s = scrape(url)
        samples.append((mark, s))
        v = s["values"]
        print("t=%5.1fs  RSS %7.1f MiB  Lua %7.1f MiB  CPU %6.2f s  in flight %3d  (/metrics: %.1f MiB in %.0f ms)"
              % (mark, v.get("process_resident_memory_bytes", 0) / MIB, v.get("smtpsh_lua_memory_bytes", 0) / MIB,
                 v.get("process_cpu_seconds_total", 0), v.get("smtpsh_watch_probes_in_flight", 0),
                 s["bytes"] / MIB, s["seconds"] * 1000), flush=True)
    final = samples[-1][1]

    # The schedule -------------------------------------------------------------------------
    runs = sum(t["runs"] for t in report)
    expected = targets * duration / every
    overruns = sum(t["overruns"] for t in report)
    timed = [t for t in report if t["mean_interval"] is not None]
    errors = [abs(t["mean_interval"] - t["every"]) for t in timed]
    mean_error = sum(errors) / len(errors) if errors else float("nan")
    worst = max(timed, key=lambda t: abs(t["mean_interval"] - t["every"])) if timed else None
    # The first start is not moved by the jitter, the last one is (by up to +-jitter*every,
    # |U| = 0.5 on average): what the jitter alone adds to |mean_interval - every|.
    from_jitter = (sum(every * jitter * 0.5 / (t["runs"] - 1) for t in timed) / len(timed)) if timed else 0
    lagged = [t for t in report if t["mean_lag"] is not None]
    mean_lag = (sum(t["mean_lag"] * t["runs"] for t in lagged) / runs) if runs else float("nan")
    max_lag = max((t["max_lag"] for t in report), default=0)
    starts = final["values"].get("smtpsh_watch_schedule_lag_seconds_count", 0)
    late = starts - final["lag"].get("0.01", starts)
    never = sum(1 for t in report if t["runs"] == 0)
    verdicts = {}
    for t in report:
        key = t["verdict"] or t["result"] or "not probed"
        verdicts[key] = verdicts.get(key, 0) + 1

    # Memory and CPU -----------------------------------------------------------------------
    def at(mark, name):
        for m, s in samples:
            if m >= mark:
                return s["values"].get(name, 0), m
        return None, None

    rss_end = final["values"].get("process_resident_memory_bytes", 0)
    lua_end = final["values"].get("smtpsh_lua_memory_bytes", 0)
    cpu_end = final["values"].get("process_cpu_seconds_total", 0)

    def growth(name, end):
        if duration <= STEADY_FROM:
            return "n/a (DURATION must be over %d s)" % STEADY_FROM
        value, mark = at(STEADY_FROM, name)
        if value is None or mark >= duration:
            return "n/a (no sample between %d s and the end)" % STEADY_FROM
        after = [s["values"].get(name, 0) for m, s in samples if m >= mark]
        return "%+.2f MiB (%+.1f%%) from %.1f MiB at %d s to %.1f MiB at %g s; %.1f to %.1f MiB in between" % (
            (end - value) / MIB, 100 * (end - value) / value if value else 0, value / MIB, mark, end / MIB, duration,
            min(after) / MIB, max(after) / MIB)

    cpu_steady = ""
    cpu_20, mark_20 = at(STEADY_FROM, "process_cpu_seconds_total")
    if duration > STEADY_FROM and cpu_20 is not None and mark_20 < duration:
        cpu_steady = " (from %d s to the end: %.1f%%)" % (mark_20, 100 * (cpu_end - cpu_20) / (duration - mark_20))
    scrape_seconds = sum(s["seconds"] for _, s in samples)

    print()
    print("watch benchmark: targets=%d every=%g duration=%g" % (targets, every, duration))
    if timed:
        print("interval error: mean |mean_interval - every| = %.4f s (%.2f%% of every) over %d targets; jitter %g alone adds about %.4f s"
              % (mean_error, 100 * mean_error / every, len(timed), jitter, from_jitter))
    else:
        print("interval error: n/a (no target started twice; DURATION must be over EVERY)")
    if worst:
        print("worst mean_interval: %.4f s (%s, %d runs)" % (worst["mean_interval"], worst["target"], worst["runs"]))
    print("runs: %d of %g expected (%.1f%%; /targets read at %.2f s); targets never probed: %d" % (
        runs, expected, 100 * runs / expected, read_at, never))
    print("overruns: %d" % overruns)
    print("lag: mean %.2f ms, max %.2f ms; starts later than 10 ms: %d of %d" % (
        mean_lag * 1000, max_lag * 1000, late, starts))
    print("last verdicts: %s" % ", ".join("%s %d" % kv for kv in sorted(verdicts.items())))
    print("RSS at end: %.1f MiB; growth: %s" % (rss_end / MIB, growth("process_resident_memory_bytes", rss_end)))
    print("Lua memory at end: %.1f MiB; growth: %s" % (lua_end / MIB, growth("smtpsh_lua_memory_bytes", lua_end)))
    per_target = "RSS per target: %.1f KiB (RSS at end / targets)" % (rss_end / 1024 / targets)
    if baseline_rss:
        per_target += "; %.1f KiB over a 1-target watcher's %.1f MiB" % (
            (rss_end - baseline_rss) / 1024 / targets, baseline_rss / MIB)
    print(per_target)
    print("CPU: %.2f s in %g s = %.1f%% of one core%s" % (cpu_end, duration, 100 * cpu_end / duration, cpu_steady))
    print("CPU without the /metrics scrapes: about %.1f%% of one core, %.2f ms a probe (the %d scrapes, %.1f MiB each, took %.2f s)"
          % (100 * max(0, cpu_end - scrape_seconds) / duration, 1000 * max(0, cpu_end - scrape_seconds) / max(runs, 1),
             len(samples), final["bytes"] / MIB, scrape_seconds))
    ok = never == 0 and verdicts.get("ok", 0) == targets
    return 0 if ok else 1


def main(argv):
    try:
        if len(argv) == 7 and argv[1] == "sinks":
            return sinks(argv[2], int(argv[3]), float(argv[4]), float(argv[5]), float(argv[6]))
        if len(argv) == 3 and argv[1] == "rss":
            print(int(metric_values(get(argv[2] + "/metrics"))[0]["process_resident_memory_bytes"]))
            return 0
        if len(argv) in (9, 10) and argv[1] == "measure":
            return measure(argv[2], int(argv[3]), float(argv[4]), float(argv[5]), float(argv[6]), float(argv[7]),
                           int(argv[8]), float(argv[9]) if len(argv) == 10 and argv[9] else 0)
    except (OSError, ValueError, KeyError) as error:
        sys.stderr.write("watch_bench.py %s: %s\n" % (argv[1], error))
        return 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
