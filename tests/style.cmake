# The code's format is checked like its behaviour (included by tests/CMakeLists.txt): every C++
# file in the repository must be as clang-format (the project's .clang-format) writes it.
# `clang-format -i FILE` fixes one. Only in the normal build: the sources are the same in both.
find_program(SMTPSH_CLANG_FORMAT NAMES clang-format-14 clang-format)
if(NOT SMTPSH_SANITIZE)
  if(SMTPSH_CLANG_FORMAT)
    add_test(NAME style/clang-format
             COMMAND sh -c "find engine bindings shell tests -name '*.cpp' -o -name '*.hpp' | \
sort | xargs '${SMTPSH_CLANG_FORMAT}' --dry-run --Werror"
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  else()
    # Loud, not skipped: a missing tool must not look like a pass.
    add_test(NAME style/clang-format
             COMMAND sh -c "echo 'clang-format is missing: run ./setup.sh --tests' >&2; exit 1")
  endif()
endif()

# clang-tidy's bug-finding checks (the project's .clang-tidy) on every C++ file of engine,
# bindings and shell, with this build's compile commands (CMAKE_EXPORT_COMPILE_COMMANDS): any
# finding fails the test. Two files at a time, the largest first. The static analyzer runs in
# its shallow mode: the deep one takes twice as long (engine/net/connection.cpp alone 40 s, all
# 4 minutes on two cores); `clang-tidy-14 -p build FILE` runs it deep on one file. The tests are
# left out: they add minutes (doctest and Asio in every file) and ship nothing. Only in the
# normal build, like the format check.
find_program(SMTPSH_CLANG_TIDY NAMES clang-tidy-14 clang-tidy)
if(NOT SMTPSH_SANITIZE)
  if(SMTPSH_CLANG_TIDY)
    add_test(NAME style/clang-tidy
             COMMAND sh -c "find engine bindings shell -name '*.cpp' | xargs ls -S | \
xargs -P2 -n1 '${SMTPSH_CLANG_TIDY}' --quiet -p '${PROJECT_BINARY_DIR}' --warnings-as-errors='*' \
--extra-arg=-Xclang --extra-arg=-analyzer-config --extra-arg=-Xclang --extra-arg=mode=shallow"
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    # The longest test (~4 minutes): started first, so it overlaps the others instead of
    # running alone at the end (ctest has no timings on a fresh clone to go by).
    set_tests_properties(style/clang-tidy PROPERTIES TIMEOUT 900 COST 1000)
  else()
    # Loud, not skipped: a missing tool must not look like a pass.
    add_test(NAME style/clang-tidy
             COMMAND sh -c "echo 'clang-tidy is missing: run ./setup.sh --tests' >&2; exit 1")
  endif()
endif()
