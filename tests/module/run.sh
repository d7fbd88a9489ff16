#!/usr/bin/env bash
# Runs one tests/module/*.lua with Debian's stock lua5.4 against the built Lua C module
# (BUILD_DIR/smtpsh.so), with smtpsh's scenario server `accept` on loopback as a real peer:
# the test finds it in the environment as SMTPSH_TEST_TARGET=127.0.0.1:PORT.
#
#   tests/module/run.sh BUILD_DIR SMTPSH_BINARY TEST.lua
#
# Exit status: the test's. Every process started here is bounded (timeout) and stopped.
set -euo pipefail
build=$1 smtpsh=$2 test=$3
lua=$(command -v lua5.4) || { echo "lua5.4 is missing: run ./setup.sh --tests" >&2; exit 1; }
[[ -f $build/smtpsh.so ]] || { echo "no $build/smtpsh.so: build the smtpsh_lua target" >&2; exit 1; }

tmp=$(mktemp -d)
server=""
cleanup() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A clean environment: no user files, no LUA_* settings that change what is loaded.
clean=(env -u SMTPSH_PATH -u XDG_CONFIG_HOME -u LUA_PATH -u LUA_CPATH -u LUA_INIT
       -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT_5_4 HOME="$tmp")

"${clean[@]}" timeout 250 "$smtpsh" serve accept --listen 127.0.0.1:0 \
  >"$tmp/server.out" 2>"$tmp/server.err" &
server=$!
target=""
for _ in $(seq 150); do
  target=$(sed -n 's/^listening on \([^ ]*\) .*/\1/p' "$tmp/server.out")
  [[ -n $target ]] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $target ]]; then
  echo "the scenario server did not start:" >&2
  cat "$tmp/server.out" "$tmp/server.err" >&2
  exit 1
fi

SMTPSH_TEST_TARGET=$target "${clean[@]}" timeout 120 \
  "$lua" -e "package.cpath = '$build/?.so;' .. package.cpath" "$test"
