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
