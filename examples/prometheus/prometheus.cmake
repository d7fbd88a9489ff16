# examples/promtool_*: the Prometheus example is checked by Prometheus' own tool, so a config or
# rule that no longer loads, or an alert that no longer fires on its test series, fails the
# suite (included by tests/CMakeLists.txt). Only in the normal build: the files are the same in
# both.
if(SMTPSH_SANITIZE)
  return()
endif()
find_program(SMTPSH_PROMTOOL NAMES promtool)
set(SMTPSH_PROMTOOL_TESTS examples/promtool_config examples/promtool_rules examples/promtool_test)
if(SMTPSH_PROMTOOL)
  add_test(NAME examples/promtool_config
           COMMAND ${SMTPSH_PROMTOOL} check config examples/prometheus/prometheus.yml
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  add_test(NAME examples/promtool_rules
           COMMAND ${SMTPSH_PROMTOOL} check rules examples/prometheus/alerts.yml
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  add_test(NAME examples/promtool_test
           COMMAND ${SMTPSH_PROMTOOL} test rules examples/prometheus/alerts_test.yml
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
else()
  # Loud, not skipped: a missing tool must not look like a pass.
  foreach(name IN LISTS SMTPSH_PROMTOOL_TESTS)
    add_test(NAME ${name}
             COMMAND sh -c "echo 'promtool is missing: run ./setup.sh --tests' >&2; exit 1")
  endforeach()
endif()
set_tests_properties(${SMTPSH_PROMTOOL_TESTS} PROPERTIES LABELS examples TIMEOUT 60)
