#!/bin/sh
# smtpsh under valgrind's memcheck, for the end-to-end and Lua tests (tests/valgrind/valgrind.cmake):
# tests that run the binary named by SMTPSH run this wrapper instead, with the real binary in
# SMTPSH_REAL. A memory error, or a definite leak, makes the exit status 97 and the report goes
# to standard error (where the tests show it on failure).
if [ -z "${SMTPSH_REAL:-}" ] || [ ! -x "$SMTPSH_REAL" ]; then
  echo "smtpsh-memcheck.sh: set SMTPSH_REAL to the real smtpsh binary" >&2
  exit 2
fi
# --show-leak-kinds=definite: the "possibly lost" blocks of a Lua state still open at exit
# (os.exit) are not leaks, and printing them would break the tests that check stderr exactly.
exec valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --error-exitcode=97 --track-fds=no --quiet --num-callers=30 \
  "$SMTPSH_REAL" "$@"
