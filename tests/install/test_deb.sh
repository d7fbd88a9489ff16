#!/usr/bin/env bash
# The Debian package, end to end: builds the .deb with CPack from a built build directory,
# checks its metadata (Depends from dpkg-shlibdeps, each one satisfiable on this Debian; lua5.4
# recommended; the file layout), installs it with `dpkg --root` into a fresh root and runs the
# installed files from there, with no LD_LIBRARY_PATH and nothing from the build directory:
#
#   smtpsh --version; the man page through `man -l` (when the package has one); the bash
#   completion offering subcommands, a subcommand's options and a user's script; the zsh
#   completion (when zsh is installed); `require "smtpsh"` in the stock lua5.4 from the
#   installed module and stdlib; the scenario server `smtpsh serve accept` on loopback probed
#   by `smtpsh banner` and by the installed module. Last, `dpkg --purge` leaves no file behind.
#
#   tests/install/test_deb.sh BUILD_DIR        (env CPACK: the cpack to use)
#
# Not a chroot (debootstrap needs the network and minutes): the root has only the package's
# files, and the binaries use this system's libraries, the ones the package depends on.
# Every process is bounded and stopped.
set -euo pipefail

build=$(cd "${1:?usage: test_deb.sh BUILD_DIR}" && pwd)
cpack=${CPACK:-cpack}
work=$(mktemp -d)
server=""
cleanup() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

# --- build the package ----------------------------------------------------------------------
[[ -f $build/CPackConfig.cmake ]] || die "$build/CPackConfig.cmake is missing: configure $build first"
(cd "$work" && timeout 240 "$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkg") \
  >"$work/cpack.log" 2>&1 || { cat "$work/cpack.log" >&2; die "cpack -G DEB failed"; }
debs=("$work"/pkg/*.deb)
[[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || { cat "$work/cpack.log" >&2; die "cpack made no single .deb"; }
deb=${debs[0]}
ok "cpack -G DEB made ${deb##*/} ($(du -k "$deb" | cut -f1) KiB)"

# --- metadata -------------------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
version=$(field Version)
depends=$(field Depends)
recommends=$(field Recommends || true)
echo "     Depends: $depends"
echo "     Recommends: $recommends"
[[ $(field Package) == smtpsh ]] || fail "Package is '$(field Package)', not smtpsh"
[[ $(field Architecture) == "$(dpkg --print-architecture)" ]] || fail "Architecture is '$(field Architecture)'"
[[ $depends == *libc6* ]] || fail "Depends lacks libc6 (dpkg-shlibdeps did not run?): '$depends'"
[[ $recommends == *lua5.4* ]] || fail "Recommends lacks lua5.4: '$recommends'"

# Each Depends group (a | b) must be satisfied by a package installed on this Debian.
satisfied() {  # "pkg (>= 1.2)" -> status
  local spec=$1 name op want have
  name=$(sed -E 's/^([^ (]+).*/\1/' <<<"$spec")
  have=$(dpkg-query -W -f='${Status} ${Version}\n' "$name" 2>/dev/null |
         sed -n 's/^install ok installed //p' | head -n1)
  [[ -n $have ]] || return 1
  if [[ $spec =~ \(([<>=]+)\ *([^\)]+)\) ]]; then
    op=${BASH_REMATCH[1]} want=${BASH_REMATCH[2]}
    case $op in '>=') op=ge ;; '<=') op=le ;; '>>') op=gt ;; '<<') op=lt ;; '=') op=eq ;; esac
    dpkg --compare-versions "$have" "$op" "$want" || return 1
  fi
}
IFS=',' read -r -a groups <<<"$depends"
for group in "${groups[@]}"; do
  group=$(sed -E 's/^ +| +$//g' <<<"$group")
  [[ -z $group ]] && continue
  found=0
  IFS='|' read -r -a alternatives <<<"$group"
  for alternative in "${alternatives[@]}"; do
    alternative=$(sed -E 's/^ +| +$//g' <<<"$alternative")
    if satisfied "$alternative"; then found=1; break; fi
  done
  ((found)) || fail "dependency '$group' is not satisfied on this system"
done
ok "every Depends group is satisfied by an installed Debian package"

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
module_rel=usr/lib/$multiarch/lua/5.4/smtpsh.so
contents=$(dpkg-deb -c "$deb" | awk '{print $NF}')
for path in usr/bin/smtpsh "$module_rel" usr/share/lua/5.4/smtpsh/retry.lua \
            usr/share/lua/5.4/smtpsh/smtp.lua usr/share/smtpsh/scripts/banner.lua \
            usr/share/smtpsh/examples/servers/accept.lua \
            usr/share/bash-completion/completions/smtpsh usr/share/zsh/vendor-completions/_smtpsh; do
  grep -qxF "./$path" <<<"$contents" || fail "the package lacks /$path"
done
ok "the package holds the binary, the module, the stdlib, scripts, examples and completions"

# --- install into a fresh root --------------------------------------------------------------
# dpkg itself, with a database of its own in the root. That root has none of the Depends (they
# were checked against this system above, and the binaries below use this system's), hence
# --force-depends; the package has no maintainer scripts.
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$work/home"
touch "$root/var/lib/dpkg/status"
dpkg_root=(dpkg --root="$root" --log=/dev/null --force-not-root --force-depends
           --force-script-chrootless)
"${dpkg_root[@]}" -i "$deb" >"$work/dpkg.log" 2>&1 ||
  { cat "$work/dpkg.log" >&2; die "dpkg --root -i failed"; }
[[ $(dpkg --root="$root" -s smtpsh | sed -n 's/^Status: //p') == "install ok installed" ]] ||
  die "dpkg --root does not list smtpsh as installed"
ok "dpkg --root=ROOT -i installed it ($(dpkg --root="$root" -L smtpsh | wc -l) paths)"
bin=$root/usr/bin/smtpsh
# A minimal environment: the installed bin first, no LD_LIBRARY_PATH, no LUA_* or SMTPSH_PATH.
run() {
  env -i PATH="$root/usr/bin:/usr/bin:/bin" HOME="$work/home" LC_ALL=C.UTF-8 TERM=dumb \
    timeout 30 "$@"
}

for elf in "$bin" "$root/$module_rel"; do
  libs=$(env -u LD_LIBRARY_PATH ldd "$elf" 2>&1) || fail "ldd $elf: $libs"
  grep -q "not found" <<<"$libs" && fail "${elf#"$root"} needs a library that is not there: $libs"
  grep -qF "$build" <<<"$libs" && fail "${elf#"$root"} loads from the build directory: $libs"
done
ok "the binary and the module resolve every library from the system"

got=$(run "$bin" --version) || fail "smtpsh --version exited $?"
[[ $got == "smtpsh ${version%%-*} "* ]] && ok "smtpsh --version: $got" ||
  fail "smtpsh --version printed '$got', the package is $version"

# --- man page -------------------------------------------------------------------------------
man_page=$root/usr/share/man/man1/smtpsh.1
[[ -f $man_page ]] || man_page=$root/usr/share/man/man1/smtpsh.1.gz
if [[ -f $man_page ]]; then
  if ! command -v man >/dev/null; then
    fail "the package has a man page but man is missing (package man-db: ./setup.sh --tests)"
  elif page=$(run env MANWIDTH=80 man -l -P cat "$man_page" 2>"$work/man.err"); then
    grep -qi "smtpsh" <<<"$page" && ok "man -l shows the installed man page ($(wc -l <<<"$page") lines)" ||
      fail "man -l output does not mention smtpsh"
    [[ -s $work/man.err ]] && { echo "     man warnings:"; sed 's/^/       /' "$work/man.err"; }
  else
    fail "man -l $man_page failed: $(cat "$work/man.err")"
  fi
else
  echo "skip man page: the package has none (doc/smtpsh.1 did not exist when $build was configured)"
fi

# --- bash completion ------------------------------------------------------------------------
completion=$root/usr/share/bash-completion/completions/smtpsh
mkdir -p "$work/home/.config/smtpsh/scripts"
echo 'print("hello from a user script")' >"$work/home/.config/smtpsh/scripts/hello_user.lua"
complete_bash() {  # words... (the last is the one completed) -> the candidates, one a line
  run bash --norc --noprofile -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    _smtpsh
    printf "%s\n" "${COMPREPLY[@]}"' bash "$completion" "$@"
}
got=$(complete_bash smtpsh di) || fail "the bash completion failed: $got"
grep -qx diagnose <<<"$got" && ok "bash: 'smtpsh di<Tab>' offers diagnose" ||
  fail "bash: 'smtpsh di<Tab>' offered '$got'"
got=$(complete_bash smtpsh "")
for command in banner diagnose dns send serve tls verify hello_user; do
  grep -qx "$command" <<<"$got" || fail "bash: 'smtpsh <Tab>' lacks $command (offered: $(echo $got))"
done
ok "bash: 'smtpsh <Tab>' offers the subcommands, and the user's script hello_user"
got=$(complete_bash smtpsh --trace banner --ti)
grep -qx -e --timeout <<<"$got" && ok "bash: 'smtpsh --trace banner --ti<Tab>' offers --timeout" ||
  fail "bash: 'smtpsh banner --ti<Tab>' offered '$got'"
got=$(complete_bash smtpsh diagnose --re)
grep -qx -e --rejudge <<<"$got" && grep -qx -e --retries <<<"$got" &&
  ok "bash: 'smtpsh diagnose --re<Tab>' offers $(echo $got)" ||
  fail "bash: 'smtpsh diagnose --re<Tab>' offered '$got'"

# --- zsh completion -------------------------------------------------------------------------
zcompletion=$root/usr/share/zsh/vendor-completions/_smtpsh
if command -v zsh >/dev/null; then
  zsh -n "$zcompletion" || fail "zsh -n: _smtpsh does not parse"
  # compadd and _files stubbed: what the completion function offers, one a line.
  complete_zsh() {
    run zsh -f -c '
      compadd() { while [[ $1 == -* && $1 != -- ]]; do shift; done; [[ $1 == -- ]] && shift
                  print -l -- "$@"; }
      _files() { :; }
      f=$1; shift; words=("$@"); CURRENT=$#; PREFIX=${words[-1]}
      source $f' zsh "$zcompletion" "$@"
  }
  got=$(complete_zsh smtpsh "")
  grep -qx diagnose <<<"$got" && grep -qx hello_user <<<"$got" &&
    ok "zsh: 'smtpsh <Tab>' offers the subcommands and the user's script" ||
    fail "zsh: 'smtpsh <Tab>' offered '$(echo $got)'"
  got=$(complete_zsh smtpsh banner --)
  grep -qx -e --timeout <<<"$got" && ok "zsh: 'smtpsh banner --<Tab>' offers --timeout" ||
    fail "zsh: 'smtpsh banner --<Tab>' offered '$(echo $got)'"
else
  echo "skip zsh completion: zsh is not installed (./setup.sh --tests installs it)"
fi

# --- the scenario server, probed by the installed binary ------------------------------------
run "$bin" serve accept --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" &
server=$!
target=""
for _ in $(seq 150); do
  target=$(sed -n 's/^listening on \([^ ]*\) .*/\1/p' "$work/server.out")
  [[ -n $target ]] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $target ]]; then
  fail "smtpsh serve accept did not start: $(cat "$work/server.out" "$work/server.err")"
else
  ok "smtpsh serve accept listens on $target"
  if got=$(run "$bin" banner "$target" 2>&1) && grep -q "220" <<<"$got"; then
    ok "smtpsh banner $target: $(head -n1 <<<"$got")"
  else
    fail "smtpsh banner $target: $got"
  fi
fi

# --- the Lua module in the stock lua5.4 -----------------------------------------------------
if command -v lua5.4 >/dev/null; then
  paths="package.cpath = '$root/usr/lib/$multiarch/lua/5.4/?.so;' .. package.cpath
         package.path = '$root/usr/share/lua/5.4/?.lua;' .. package.path"
  if got=$(run env SMTPSH_TEST_TARGET="$target" lua5.4 -e "$paths" -e '
      local smtpsh = require "smtpsh"
      assert(package.searchpath("smtpsh", package.cpath):find("/usr/lib/", 1, true))
      assert(smtpsh.run(function(x) return x * 2 end, 21) == 42)
      local retry = require "smtpsh.retry"
      assert(type(retry.run) == "function")
      local target = os.getenv("SMTPSH_TEST_TARGET")
      if target ~= "" then
        local s = assert(smtpsh.smtp.connect(target, {timeout = 10}))
        assert(s.banner.code == 220, tostring(s.banner))
        assert(s:ehlo()); s:quit()
      end
      print(smtpsh._VERSION .. " loaded; smtpsh.run, smtpsh.retry and an SMTP session work")' 2>&1); then
    ok "lua5.4: $got"
  else
    fail "lua5.4 with the installed module: $got"
  fi
  # The stdlib on Lua's path also loads before the module itself (the all-in-one C loader
  # finds smtpsh.task & co. in smtpsh.so).
  got=$(run lua5.4 -e "$paths" -e '
      local retry = require "smtpsh.retry"
      assert(package.loaded["smtpsh.retry"] and type(retry.delays) == "function")
      local d = retry.delays{tries = 4}
      print(string.format("%g,%g,%g", d[1], d[2], d[3]))' 2>&1) &&
    [[ $got == "1,2,4" ]] && ok "lua5.4: require \"smtpsh.retry\" alone, from the installed stdlib" ||
    fail "lua5.4: require \"smtpsh.retry\" from the installed stdlib: $got"
else
  fail "lua5.4 is missing (./setup.sh --tests installs it)"
fi

# --- removal --------------------------------------------------------------------------------
if [[ -n $server ]]; then
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
fi
"${dpkg_root[@]}" --purge smtpsh >"$work/dpkg.log" 2>&1 || fail "dpkg --purge: $(cat "$work/dpkg.log")"
left=$(cd "$root" && find usr -type f 2>/dev/null || true)
[[ -z $left ]] && ok "dpkg --purge removed every file" || fail "left after --purge: $left"

if ((failures > 0)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all package checks passed"
