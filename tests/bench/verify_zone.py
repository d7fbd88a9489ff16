#!/usr/bin/python3
"""Inputs of tests/bench/verify.sh: one DNS zone with DOMAINS mail domains on loopback, and a
list of ADDRESSES addresses spread over them.

    /usr/bin/python3 tests/bench/verify_zone.py DIR ADDRESSES DOMAINS

Writes:
  DIR/zones/bench.test.zone  the zone bench.test: for N in 1..DOMAINS, dN.bench.test has
                             `MX 10 mx.dN.bench.test.` and mx.dN.bench.test has `A 127.0.0.1`
                             (one MX name per domain, as in real lists: one MX look-up and one
                             address look-up per domain, no answer shared between domains)
  DIR/addresses.txt          ADDRESSES lines uK@dN.bench.test, K = 1..ADDRESSES and
                             N = (K - 1) % DOMAINS + 1: the domains interleaved, as in a list
                             that is not sorted by domain
"""

import os
import sys

ZONE = "bench.test"


def main(argv):
    if len(argv) != 4 or not argv[2].isdigit() or not argv[3].isdigit():
        sys.stderr.write("usage: verify_zone.py DIR ADDRESSES DOMAINS\n")
        return 2
    out, addresses, domains = argv[1], int(argv[2]), int(argv[3])
    if addresses < 1 or domains < 1 or domains > addresses or domains > 1_000_000:
        sys.stderr.write("verify_zone.py: need 1 <= DOMAINS <= ADDRESSES and DOMAINS <= 1000000\n")
        return 2
    os.makedirs(os.path.join(out, "zones"), exist_ok=True)
    lines = [
        f"$ORIGIN {ZONE}.",
        "$TTL 3600",
        f"@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 3600",
        f"@ IN NS ns.{ZONE}.",
        "ns IN A 127.0.0.1",
    ]
    for n in range(1, domains + 1):
        lines.append(f"d{n} IN MX 10 mx.d{n}.{ZONE}.")
        lines.append(f"mx.d{n} IN A 127.0.0.1")
    with open(os.path.join(out, "zones", f"{ZONE}.zone"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "addresses.txt"), "w") as f:
        f.writelines(f"u{k}@d{(k - 1) % domains + 1}.{ZONE}\n" for k in range(1, addresses + 1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
