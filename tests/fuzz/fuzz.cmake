# Fuzz targets for the parsers that read outside input (libFuzzer), built with clang when it
# is installed: the main build may use g++, so they are compiled by commands of their own.
# Each runs under ctest for a bounded time from a copy of its seed corpus (libFuzzer writes
# new inputs into its first corpus directory, which must not be the repository);
# tests/fuzz/run_long.sh runs the built ones for longer, by hand.
#
# One entry a target, at the end of this file:
#   smtpsh_fuzz(NAME [CORPUS DIR] [SECONDS N] [SOURCES file...] [LIBS -lx...] [LUA])
# builds tests/fuzz/fuzz_NAME.cpp with SOURCES (paths from the repository root) into
# fuzz_NAME, and adds the test fuzz/NAME run from tests/fuzz/corpus/DIR (default: NAME) for N
# seconds (default: SMTPSH_FUZZ_SECONDS). LUA targets link liblua5.4 and load the stdlib
# modules they fuzz from the source tree at run time (tests/fuzz/lua_harness.hpp).
find_program(SMTPSH_CLANGXX NAMES clang++-14 clang++)
set(SMTPSH_FUZZ_SECONDS 6 CACHE STRING "How long ctest runs each fuzz target")
set(SMTPSH_FUZZ_SECONDS_SMALL 6 CACHE STRING
    "How long ctest runs the fuzz targets of small parsers (host_port, cli, server_command)")

# The targets always carry ASan and UBSan, so the sanitizer build does not run them again.
if(NOT SMTPSH_CLANGXX OR SMTPSH_SANITIZE)
  if(NOT SMTPSH_CLANGXX)
    message(STATUS "clang++ not found: the fuzz targets are not built (./setup.sh --tests installs it)")
  endif()
  return()
endif()

set(SMTPSH_FUZZ_FLAGS -std=c++20 -g -O1 -Wall -Wextra -fno-sanitize-recover=undefined)
set(SMTPSH_FUZZ_MANIFEST ${CMAKE_CURRENT_BINARY_DIR}/fuzz_targets.txt)
file(WRITE ${SMTPSH_FUZZ_MANIFEST}
     "# NAME BINARY SEED_CORPUS (written by tests/fuzz/fuzz.cmake, read by tests/fuzz/run_long.sh)\n")

function(smtpsh_fuzz name)
  cmake_parse_arguments(ARG "LUA" "CORPUS;SECONDS" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_CORPUS)
    set(ARG_CORPUS ${name})
  endif()
  if(NOT ARG_SECONDS)
    set(ARG_SECONDS ${SMTPSH_FUZZ_SECONDS})
  endif()
  set(flags ${SMTPSH_FUZZ_FLAGS} -I${PROJECT_SOURCE_DIR})
  set(libs ${ARG_LIBS})
  if(ARG_LUA)
    foreach(dir IN LISTS LUA_INCLUDE_DIRS)
      list(APPEND flags -isystem ${dir})
    endforeach()
    list(APPEND flags "-DSMTPSH_SOURCE_DIR=\"${PROJECT_SOURCE_DIR}\"")
    list(APPEND libs ${LUA_LINK_LIBRARIES})
  endif()

  # Each source is compiled on its own, with a depfile, so that editing a header rebuilds the
  # targets that include it; the objects are then linked with the fuzzer's main.
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/fuzz_${name}.objects)
  set(objects)
  foreach(source IN ITEMS tests/fuzz/fuzz_${name}.cpp ${ARG_SOURCES})
    get_filename_component(stem ${source} NAME_WE)
    set(object ${dir}/${stem}.o)
    add_custom_command(
      OUTPUT ${object}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
      COMMAND ${SMTPSH_CLANGXX} ${flags} -fsanitize=fuzzer-no-link,address,undefined
              -MD -MF ${object}.d -c ${PROJECT_SOURCE_DIR}/${source} -o ${object}
      DEPENDS ${PROJECT_SOURCE_DIR}/${source}
      DEPFILE ${object}.d
      COMMENT "Compiling ${source} for the fuzz target fuzz_${name} with clang"
      VERBATIM)
    list(APPEND objects ${object})
  endforeach()
  set(binary ${CMAKE_CURRENT_BINARY_DIR}/fuzz_${name})
  add_custom_command(
    OUTPUT ${binary}
    COMMAND ${SMTPSH_CLANGXX} -fsanitize=fuzzer,address,undefined ${objects} ${libs} -o ${binary}
    DEPENDS ${objects}
    COMMENT "Linking the fuzz target fuzz_${name}"
    VERBATIM)
  add_custom_target(fuzz_${name}_target ALL DEPENDS ${binary})

  set(seeds ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${ARG_CORPUS})
  set(work ${CMAKE_CURRENT_BINARY_DIR}/fuzz_${name}_corpus)
  add_test(NAME fuzz/${name}
           COMMAND sh -c "rm -rf '${work}' && mkdir -p '${work}' && exec '${binary}' -max_total_time=${ARG_SECONDS} -timeout=5 -rss_limit_mb=2048 -artifact_prefix='${CMAKE_CURRENT_BINARY_DIR}/fuzz_${name}-' '${work}' '${seeds}'")
  set_tests_properties(fuzz/${name} PROPERTIES TIMEOUT 300)
  file(APPEND ${SMTPSH_FUZZ_MANIFEST} "${name} ${binary} ${seeds}\n")
endfunction()

set(smtp_parsers engine/smtp/reply.cpp engine/smtp/capabilities.cpp engine/smtp/status_codes.cpp)
smtpsh_fuzz(reply SOURCES ${smtp_parsers})
smtpsh_fuzz(capabilities SOURCES ${smtp_parsers} CORPUS reply)
smtpsh_fuzz(dns_answer SOURCES engine/dns/message.cpp LIBS -lldns CORPUS dns)
smtpsh_fuzz(host_port SOURCES engine/base/endpoint.cpp SECONDS ${SMTPSH_FUZZ_SECONDS_SMALL})
smtpsh_fuzz(cli SOURCES shell/cli.cpp SECONDS ${SMTPSH_FUZZ_SECONDS_SMALL})
smtpsh_fuzz(json LUA)
smtpsh_fuzz(record LUA)
smtpsh_fuzz(server_command LUA SECONDS ${SMTPSH_FUZZ_SECONDS_SMALL})
smtpsh_fuzz(explain LUA)
smtpsh_fuzz(dnssec SOURCES engine/dns/dnssec.cpp LIBS -lldns -lcrypto)
