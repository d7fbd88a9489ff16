#!/usr/bin/env bash
# The Debian package, end to end: builds the .deb with CPack from a built build directory,
# checks its metadata (Depends from dpkg-shlibdeps, each one satisfiable on this Debian; lua5.4
# recommended; the file layout), installs it with `dpkg --root` into a fresh root and runs the
# installed files from there, with no LD_LIBRARY_PATH and nothing from the build directory:
#
#   smtpsh --version; the man page through `man`; the bash completion offering subcommands, a
#   subcommand's options and a user's script; the zsh completion (when zsh is installed);
#   `require "smtpsh"` in the stock lua5.4 from the installed module and stdlib; the scenario
#   server `smtpsh serve accept` on loopback probed by `smtpsh banner` and by the installed
#   module. Last, `dpkg --purge` leaves no file behind.
#
#   tests/install/test_deb.sh BUILD_DIR        (env CPACK: the cpack to use; needs root)
#
# The fresh root is a chroot made from this system's installed packages (make_root.py, no
# network: debootstrap would download a base system for minutes): first only the package's
# Essential packages (a bare Debian) and the package's Depends, registered in the root's dpkg
# database, so `dpkg -i` checks the Depends for real (and refuses while one is missing) and
# `smtpsh --version` runs with nothing else there; then what a user adds for the rest (lua5.4
# from Recommends, man-db, zsh). Every process is bounded and stopped.
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
[[ $(id -u) == 0 ]] || { echo "skip: chroot needs root (README's test command runs as root)"; exit 77; }
[[ $(field Package) == smtpsh ]] || fail "Package is '$(field Package)', not smtpsh"
[[ $(field Architecture) == "$(dpkg --print-architecture)" ]] || fail "Architecture is '$(field Architecture)'"
[[ $depends == *libc6* ]] || fail "Depends lacks libc6 (dpkg-shlibdeps did not run?): '$depends'"
[[ $recommends == *lua5.4* ]] || fail "Recommends lacks lua5.4: '$recommends'"
[[ $recommends == *dns-root-data* ]] || fail "Recommends lacks dns-root-data: '$recommends'"

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
# The first alternative of each Depends group: what `apt-get install` would choose.
mapfile -t needed < <(tr ',' '\n' <<<"$depends" | sed -E 's/\|.*//; s/\(.*//; s/:.*//; s/ //g' | grep .)
# A bare Debian: its Essential packages (dpkg, a shell, coreutils, grep, sed, ...).
mapfile -t essential < <(dpkg-query -W -f='${Package} ${Essential}\n' | awk '$2 == "yes" {print $1}')
make_root() {  # ROOT [--register] PACKAGE... : a chroot from this system's packages
  local root=$1; shift
  python3 "$(dirname "$0")/make_root.py" "$root" "$@" >"$work/make_root.log" 2>&1 ||
    die "make_root.py: $(tail -n1 "$work/make_root.log")"
  mkdir -p "$root/tmp" "$root/dev" "$root/var/log" "$root/home/user"
  chmod 1777 "$root/tmp"
  [[ -e $root/dev/null ]] || mknod -m 666 "$root/dev/null" c 1 3 || die "mknod $root/dev/null failed"
}
in_root() {  # ROOT COMMAND...: in the chroot, a minimal environment, bounded
  local root=$1; shift
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/user \
    LC_ALL=C.UTF-8 TERM=dumb /usr/bin/timeout 30 "$@"
}

# The root's dpkg refuses the package when a dependency is missing (one that a bare Debian
# lacks): the check below has teeth.
root=$work/root
make_root "$root" --register "${essential[@]}"
missing=""
for name in "${needed[@]}"; do
  grep -qxF "$name" "$work/make_root.log" || { missing=$name; break; }
done
[[ -n $missing ]] || fail "every Depends is Essential already: nothing to check dpkg with"
others=()
for name in "${needed[@]}"; do [[ $name == "$missing" ]] || others+=("$name"); done
((${#others[@]} == 0)) || make_root "$root" --register "${others[@]}"
cp "$deb" "$root/tmp/smtpsh.deb"
if got=$(in_root "$root" dpkg -i /tmp/smtpsh.deb 2>&1); then
  fail "dpkg -i installed it into a root without $missing"
elif grep -q "depends on $missing" <<<"$got"; then
  ok "a bare root without $missing: dpkg -i refuses ('depends on $missing')"
else
  fail "dpkg -i into a root without $missing failed, but not for it: $got"
fi
in_root "$root" dpkg --purge smtpsh >/dev/null 2>&1 || true

make_root "$root" --register "$missing"
echo "     the root: Debian's ${#essential[@]} Essential packages, ${needed[*]}, and what they depend on"
cp "$deb" "$root/tmp/smtpsh.deb"
in_root "$root" dpkg -i /tmp/smtpsh.deb >"$work/dpkg.log" 2>&1 ||
  { cat "$work/dpkg.log" >&2; die "dpkg -i in the chroot failed"; }
rm -f "$root/tmp/smtpsh.deb"
[[ $(in_root "$root" dpkg-query -W -f='${Status}' smtpsh) == "install ok installed" ]] ||
  die "the root's dpkg does not list smtpsh as installed"
ok "chroot: dpkg -i installed it, its Depends checked by the root's own dpkg"

got=$(in_root "$root" smtpsh --version 2>&1) || fail "chroot: smtpsh --version: $got"
[[ $got == "smtpsh ${version%%-*} "* ]] && ok "chroot, Depends only: smtpsh --version: $got" ||
  fail "chroot: smtpsh --version printed '$got', the package is $version"

# What a user adds: a shell with completion, the Recommends, man.
extras=(man-db)
[[ $recommends == *lua5.4* ]] && extras+=(lua5.4)
command -v zsh >/dev/null && extras+=(zsh)
make_root "$root" --register "${extras[@]}"
ok "added ${extras[*]} to the root"

# --- man page -------------------------------------------------------------------------------
if grep -q '/usr/share/man/man1/smtpsh\.1' <<<"$contents"; then
  if page=$(in_root "$root" env MANWIDTH=80 man -P cat smtpsh 2>"$work/man.err"); then
    grep -q "smtpsh diagnose" <<<"$page" && ok "chroot: man smtpsh shows the page ($(wc -l <<<"$page") lines)" ||
      fail "chroot: man smtpsh does not show the diagnose command: $(head -n3 <<<"$page")"
    [[ -s $work/man.err ]] && { echo "     man warnings:"; sed 's/^/       /' "$work/man.err"; }
  else
    fail "chroot: man smtpsh failed: $(cat "$work/man.err")"
  fi
else
  echo "skip man page: the package has none (doc/smtpsh.1 did not exist when $build was configured)"
fi

# --- bash completion ------------------------------------------------------------------------
mkdir -p "$root/home/user/.config/smtpsh/scripts"
echo 'print("hello from a user script")' >"$root/home/user/.config/smtpsh/scripts/hello_user.lua"
complete_bash() {  # words... (the last is the one completed) -> the candidates, one a line
  in_root "$root" bash --norc --noprofile -c '
    source /usr/share/bash-completion/completions/smtpsh
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    _smtpsh
    printf "%s\n" "${COMPREPLY[@]}"' bash "$@"
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
if [[ -x $root/usr/bin/zsh ]]; then
  zcompletion=/usr/share/zsh/vendor-completions/_smtpsh
  in_root "$root" zsh -n "$zcompletion" || fail "zsh -n: _smtpsh does not parse"
  # compadd and _files stubbed: what the completion function offers, one a line.
  complete_zsh() {
    in_root "$root" zsh -f -c '
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
in_root "$root" smtpsh serve accept --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" &
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
  ok "chroot: smtpsh serve accept listens on $target"
  if got=$(in_root "$root" smtpsh banner "$target" 2>&1) && grep -q "220" <<<"$got"; then
    ok "chroot: smtpsh banner $target: $(head -n1 <<<"$got")"
  else
    fail "chroot: smtpsh banner $target: $got"
  fi
fi

# --- the Lua module in the stock lua5.4 -----------------------------------------------------
if [[ -x $root/usr/bin/lua5.4 ]]; then
  if got=$(in_root "$root" env SMTPSH_TEST_TARGET="$target" lua5.4 -e '
      local smtpsh = require "smtpsh"
      assert(package.searchpath("smtpsh", package.cpath):find("^/usr/lib/"))
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
    ok "chroot, lua5.4: $got"
  else
    fail "chroot, lua5.4 with the installed module: $got"
  fi
  # The stdlib on Lua's path also loads before the module itself (the all-in-one C loader
  # finds smtpsh.task & co. in smtpsh.so).
  got=$(in_root "$root" lua5.4 -e '
      local retry = require "smtpsh.retry"
      assert(package.loaded["smtpsh.retry"] and type(retry.delays) == "function")
      local d = retry.delays{tries = 4}
      print(string.format("%g,%g,%g", d[1], d[2], d[3]))' 2>&1) &&
    [[ $got == "1,2,4" ]] && ok "chroot, lua5.4: require \"smtpsh.retry\" alone, from the installed stdlib" ||
    fail "chroot, lua5.4: require \"smtpsh.retry\" from the installed stdlib: $got"
else
  fail "lua5.4 is missing (./setup.sh --tests installs it)"
fi

# --- removal --------------------------------------------------------------------------------
if [[ -n $server ]]; then
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
fi
in_root "$root" dpkg --purge smtpsh >"$work/dpkg.log" 2>&1 || fail "dpkg --purge: $(cat "$work/dpkg.log")"
left=""
while read -r path; do
  path=${path#./}
  [[ -n $path && ! -d $root/$path && -e $root/$path ]] && left+=" /$path"
done <<<"$contents"
[[ -z $left ]] && ok "chroot: dpkg --purge removed every file of the package" || fail "left after --purge:$left"

if ((failures > 0)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all package checks passed"
