# peft_read_target_flags(<file> <key> <out-var>): the space-separated flags of the
# `<key> = ...` line of a flags file (cortex_m4f.flags), as a list.
function(peft_read_target_flags file key out)
  file(STRINGS ${file} lines REGEX "^${key}[ \t]*=")
  list(LENGTH lines count)
  if(NOT count EQUAL 1)
    message(FATAL_ERROR "${file}: expected one '${key} = ...' line")
  endif()
  string(REGEX REPLACE "^${key}[ \t]*=[ \t]*" "" value "${lines}")
  string(REGEX REPLACE "[ \t]*#.*$" "" value "${value}")
  separate_arguments(value UNIX_COMMAND "${value}")
  set(${out} ${value} PARENT_SCOPE)
endfunction()
