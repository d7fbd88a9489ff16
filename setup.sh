#!/usr/bin/env bash
# Installs what smtpsh needs from Debian packages, and nothing that is already there.
#
#   ./setup.sh          build dependencies (enough to build and run smtpsh)
#   ./setup.sh --tests  also the real servers and tools the test suite runs against
#
# Idempotent: a second run installs nothing. Uses sudo when not run as root.
set -euo pipefail

build_packages=(g++ make cmake pkg-config liblua5.4-dev libasio-dev libssl-dev libldns-dev
                libedit-dev doctest-dev nlohmann-json3-dev
                dns-root-data)  # the root's DNSSEC trust anchor that smtpsh validates from
# Real peers and reference tools of the test suite and benchmarks (see tests/README.md).
test_packages=(python3 postfix python3-aiosmtpd swaks ldnsutils nsd lua5.4 openssl
               clang-14 libclang-rt-14-dev clang-format-14 clang-tidy-14 valgrind
               dnsperf time  # these two for the benchmarks (tests/bench)
               dpkg-dev file man-db zsh  # the .deb test: dpkg-shlibdeps, man -l, completions
               prometheus python3-prometheus-client chromium  # watch: a real scraper, parser, browser
               unbound)  # DNSSEC: a validating resolver beside smtpsh's own validation

packages=("${build_packages[@]}")
case "${1:-}" in
  --tests) packages+=("${test_packages[@]}") ;;
  "") ;;
  *) echo "setup.sh: unknown option '$1'; use --tests or nothing" >&2; exit 2 ;;
esac

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "setup.sh: run as root (needs: ${missing[*]})" >&2; exit 2; }
  sudo=(sudo)
fi
echo "setup.sh: installing ${missing[*]}" >&2
# Postfix asks how to configure itself; the tests need no configuration at all.
echo "postfix postfix/main_mailer_type select No configuration" | "${sudo[@]}" debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
# No service starts on its own (postfix, prometheus): the tests start private instances on
# loopback, and a daemon listening on every interface is nothing a test setup should leave.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# smtpsh setup.sh: no service starts while it installs\nexit 101\n' |
    "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  own_policy=1
fi
remove_policy() { if ((own_policy)); then "${sudo[@]}" rm -f "$policy"; fi; }
trap remove_policy EXIT
"${sudo[@]}" apt-get update -q -o DPkg::Lock::Timeout=300
"${sudo[@]}" apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}"
