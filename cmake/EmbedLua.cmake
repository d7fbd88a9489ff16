# embed_lua(OUTPUT <file.cpp> FUNCTION <c++ name> BASE <dir> FILES <a.lua>...)
#
# Generates a C++ source that defines
#   std::span<const smtpsh::EmbeddedFile> <FUNCTION>()
# holding every file as a raw string literal, keyed by its path relative to BASE
# (e.g. "stdlib/pretty.lua"). The source is regenerated whenever a Lua file changes.
function(embed_lua)
  cmake_parse_arguments(ARG "" "OUTPUT;FUNCTION;BASE" "FILES" ${ARGN})
  add_custom_command(
    OUTPUT ${ARG_OUTPUT}
    COMMAND ${CMAKE_COMMAND} -DOUTPUT=${ARG_OUTPUT} -DFUNCTION=${ARG_FUNCTION}
            -DBASE=${ARG_BASE} "-DFILES=${ARG_FILES}"
            -P ${PROJECT_SOURCE_DIR}/cmake/EmbedLuaGenerate.cmake
    DEPENDS ${ARG_FILES} ${PROJECT_SOURCE_DIR}/cmake/EmbedLuaGenerate.cmake
    COMMENT "Embedding ${ARG_FUNCTION}"
    VERBATIM)
endfunction()
