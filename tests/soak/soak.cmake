# The soak, brief (included by tests/CMakeLists.txt): tests/soak/soak.sh with 500 sessions at
# once for 8 s against the scenario servers and smtp-sink (memory and descriptors back to their
# baseline afterwards), then 1200 sessions at once with the client at `ulimit -n 256` (the
# connects over the limit fail with err.kind "resource", nothing hangs). The full soak (5000
# sessions for 60 s) is run by hand: tests/soak/soak.sh.
# Only in the normal build: AddressSanitizer's quarantine and shadow memory make the resident
# memory figures of the sanitizer build say nothing about leaks.
if(NOT SMTPSH_SANITIZE)
  set(soak_script ${CMAKE_CURRENT_LIST_DIR}/soak.sh)
  add_test(NAME soak/brief
           COMMAND bash -c "'${soak_script}' --sessions 500 --seconds 8 --warmup 2; a=$?; \
'${soak_script}' --sessions 1200 --seconds 4 --warmup 1 --nofile 256; b=$?; exit $((a | b))"
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  # RUN_SERIAL: a load test shares the two cores with nothing else, or its 3 s deadlines measure
  # the other tests.
  set_tests_properties(soak/brief PROPERTIES TIMEOUT 120 RUN_SERIAL TRUE
                       ENVIRONMENT "SMTPSH=$<TARGET_FILE:smtpsh>")
endif()
