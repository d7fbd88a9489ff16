# The Lua C module (smtpsh.so, bindings/CMakeLists.txt) in Debian's stock lua5.4: each
# tests/module/*_test.lua runs as module/NAME through tests/module/run.sh, which starts the
# scenario server `accept` on loopback as the peer. Included by tests/CMakeLists.txt.
#
# Not in the sanitizer build: the module is not built there (an ASan/UBSan smtpsh.so cannot
# load into an unsanitized lua5.4), and its code is the bindings' and engine's, which the
# sanitizer build tests inside the smtpsh binary.
if(SMTPSH_SANITIZE)
  return()
endif()
find_program(SMTPSH_LUA54 lua5.4)
file(GLOB SMTPSH_MODULE_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*_test.lua)
foreach(test_file IN LISTS SMTPSH_MODULE_TESTS)
  get_filename_component(name ${test_file} NAME_WE)
  if(NOT SMTPSH_LUA54)
    # Fails loudly rather than skipping: a missing interpreter must not look like a pass.
    add_test(NAME module/${name}
             COMMAND sh -c "echo 'lua5.4 is missing: run ./setup.sh --tests' >&2; exit 1")
    continue()
  endif()
  add_test(NAME module/${name}
           COMMAND ${CMAKE_CURRENT_LIST_DIR}/run.sh ${PROJECT_BINARY_DIR} $<TARGET_FILE:smtpsh>
                   tests/module/${name}.lua
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(module/${name} PROPERTIES TIMEOUT 150 LABELS module)
endforeach()
