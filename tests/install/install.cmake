# install/deb: the .deb built by CPack, installed into a chroot made of its Depends and run there
# (tests/install/test_deb.sh). Included by tests/CMakeLists.txt.
#
# Not in the sanitizer build: its binary needs the sanitizer runtime and it builds no Lua
# module (a sanitized smtpsh.so cannot load into the stock lua5.4), so it packages nothing
# one would install.
if(SMTPSH_SANITIZE)
  return()
endif()
add_test(NAME install/deb COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_deb.sh ${PROJECT_BINARY_DIR}
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(install/deb PROPERTIES TIMEOUT 300 LABELS install SKIP_RETURN_CODE 77
                     ENVIRONMENT "CPACK=${CMAKE_CPACK_COMMAND}")
