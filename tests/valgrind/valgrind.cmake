# The end-to-end and Lua tests again, with smtpsh under valgrind's memcheck (included by
# tests/CMakeLists.txt): valgrind/e2e_NAME and valgrind/lua_NAME. The tests run the wrapper
# tests/valgrind/smtpsh-memcheck.sh as their smtpsh (env SMTPSH), which runs the real binary
# (env SMTPSH_REAL) under memcheck: a memory error or a definite leak exits 97 and fails the test
# with valgrind's report on stderr.
#
# Only in the normal build (ASan and valgrind do not mix; the sanitizer build checks the same
# things its own way) and only when valgrind is installed (./setup.sh --tests installs it).
# Valgrind makes smtpsh 20-50 times slower, so:
#   * SMTPSH_TEST_TIME_SCALE multiplies every wait of the harness (tests/e2e/harness.py); the
#     few tests that assert wall time skip it (harness.skip_if_slowed);
#   * SSL_CERT_FILE=/dev/null: without a CA file smtpsh loads the system's CA bundle at its
#     first TLS handshake (~140 certificates: 50 ms natively, 2-3 s under valgrind, which is
#     past the deadlines the tests give). The tests' servers use the test CA or self-signed
#     certificates, so the verification results they check are the same;
#   * the modules are listed, not globbed, so that one cannot silently outgrow the time budget
#     (about 8 minutes of wall time with ctest -j2 on two cores).
find_program(SMTPSH_VALGRIND valgrind)
if(SMTPSH_VALGRIND AND NOT SMTPSH_SANITIZE)
  set(valgrind_wrapper ${CMAKE_CURRENT_LIST_DIR}/smtpsh-memcheck.sh)
  set(valgrind_env "SMTPSH=${valgrind_wrapper}" "SMTPSH_REAL=$<TARGET_FILE:smtpsh>"
      "SMTPSH_TEST_TIME_SCALE=10" "SSL_CERT_FILE=/dev/null")

  # The e2e modules under memcheck, longest first (ctest starts the most costly first). The
  # default is the brief set CI runs (CI's 30 minutes are tight on two cores); the long set
  # adds the slowest (diagnose: ~230 s, tls: ~135 s, cli: ~90 s, replay: ~65 s under memcheck
  # on two busy cores), run by hand:
  #   cmake -B build -DSMTPSH_VALGRIND_E2E="diagnose;smtp;cli;tls;dns;replay;repl;net;server;tasks"
  # A new module goes here once its time under valgrind is known (test_hostile: ~190 s alone;
  # dns: ~110 s and smtp: ~95 s, in the long set: both engines are also under ASan and fuzzed;
  # dnssec_validate: ~90 s, its C++ steps also under ASan, fuzzed and memchecked in unit_tests).
  set(SMTPSH_VALGRIND_E2E repl net server tasks CACHE STRING
      "The e2e modules (tests/e2e/test_NAME.py) run again under valgrind")
  if(PYTHON3)
    set(cost 100)
    foreach(name IN LISTS SMTPSH_VALGRIND_E2E)
      add_test(NAME valgrind/e2e_${name} COMMAND ${PYTHON3} -m unittest -v tests/e2e/test_${name}.py
               WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
      set_tests_properties(valgrind/e2e_${name} PROPERTIES TIMEOUT 600 COST ${cost}
                           LABELS valgrind ENVIRONMENT "${valgrind_env}")
      math(EXPR cost "${cost} - 10")
    endforeach()
  endif()

  # The Lua tests (tests/lua/*_test.lua, no peers): a second or two each under memcheck. Not
  # those of pure Lua modules, which reach no C++ beyond the Lua VM (memcheck finds nothing
  # there that the ASan build does not); SMTPSH_VALGRIND_ALL_LUA=ON runs them too.
  option(SMTPSH_VALGRIND_ALL_LUA "Also the Lua tests of pure Lua modules under valgrind" OFF)
  set(pure_lua_tests address_test classify_test complete_test help_test json_test judge_test
      mime_test pretty_test prometheus_test ratelimit_test record_file_test retry_test
      server_command_test waterfall_test explain_test)
  file(GLOB valgrind_lua_tests CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/lua/*_test.lua)
  foreach(test_file IN LISTS valgrind_lua_tests)
    get_filename_component(name ${test_file} NAME_WE)
    if(NOT SMTPSH_VALGRIND_ALL_LUA AND name IN_LIST pure_lua_tests)
      continue()
    endif()
    add_test(NAME valgrind/lua_${name} COMMAND ${valgrind_wrapper} tests/lua/${name}.lua
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(valgrind/lua_${name} PROPERTIES TIMEOUT 300 LABELS valgrind
                         ENVIRONMENT "${valgrind_env}")
  endforeach()
elseif(NOT SMTPSH_SANITIZE)
  message(STATUS "valgrind not found: the valgrind/ tests are not registered (./setup.sh --tests installs it)")
endif()
