# The runtime's sources, shared by the Zephyr, host and Cortex-M4F builds.
# Each method's code sits in methods/peft_method_<name>.c so that Kconfig can
# leave it out; everything else is common. scripts/micropeft/eval/cm4.py mirrors
# these rules for the Cortex-M4F build.
set(PEFT_LIB_DIR ${CMAKE_CURRENT_LIST_DIR})
get_filename_component(PEFT_INCLUDE_DIR ${CMAKE_CURRENT_LIST_DIR}/../../include ABSOLUTE)

# kernels/<op>/peft_<op>_op.c: the entry in the op table (ops/peft_ops.h) of an op
# whose kernels have an optimized version: kept apart from the kernel files that
# a backend replaces, part of the runtime in every backend. An op with reference
# kernels only has its entry at the end of its kernel file, peft_<op>.c.
file(GLOB PEFT_COMMON_SOURCES CONFIGURE_DEPENDS
  ${PEFT_LIB_DIR}/common/*.c
  ${PEFT_LIB_DIR}/kernels/*/peft_*_op.c
  ${PEFT_LIB_DIR}/optim/*.c
  ${PEFT_LIB_DIR}/ops/*.c
  ${PEFT_LIB_DIR}/plan/*.c
  ${PEFT_LIB_DIR}/runtime/*.c)
list(SORT PEFT_COMMON_SOURCES)

# Kernel backends: "reference" (kernels/<op>/, the readable reference) and
# "optimized" (kernels_optimized/<op>/: the same file and function names,
# register-blocked). For the optimized backend a file of kernels_optimized/<op>/
# replaces the reference file of the same name; the op's other kernels serve
# both. The op-table entries (peft_<op>_op.c) are not kernels: see above.
# The choice is made here, never by #ifdef in a kernel. An optimized op folder
# may also hold dsp/ and portable/ variants of the same file: dsp/ on cores with
# the DSP extension (`dsp` ON), portable/ otherwise.
set(PEFT_BACKENDS reference optimized)
function(peft_kernel_sources backend dsp out_var)
  if(NOT backend IN_LIST PEFT_BACKENDS)
    message(FATAL_ERROR "PEFT_BACKEND must be one of ${PEFT_BACKENDS}, not '${backend}'")
  endif()
  file(GLOB op_dirs LIST_DIRECTORIES true ${PEFT_LIB_DIR}/kernels/*)
  set(sources)
  foreach(dir ${op_dirs})
    if(NOT IS_DIRECTORY ${dir})
      continue()
    endif()
    get_filename_component(op ${dir} NAME)
    file(GLOB op_sources CONFIGURE_DEPENDS ${dir}/*.c)
    list(FILTER op_sources EXCLUDE REGEX "_op\\.c$")
    set(optimized ${PEFT_LIB_DIR}/kernels_optimized/${op})
    if(backend STREQUAL "optimized" AND IS_DIRECTORY ${optimized})
      file(GLOB optimized_sources CONFIGURE_DEPENDS ${optimized}/*.c)
      foreach(source ${optimized_sources})
        get_filename_component(name ${source} NAME)
        list(REMOVE_ITEM op_sources ${dir}/${name})
      endforeach()
      list(APPEND op_sources ${optimized_sources})
      if(IS_DIRECTORY ${optimized}/dsp)
        if(dsp)
          file(GLOB variant CONFIGURE_DEPENDS ${optimized}/dsp/*.c)
        else()
          file(GLOB variant CONFIGURE_DEPENDS ${optimized}/portable/*.c)
        endif()
        list(APPEND op_sources ${variant})
      endif()
    endif()
    list(APPEND sources ${op_sources})
  endforeach()
  list(SORT sources)
  set(${out_var} ${sources} PARENT_SCOPE)
endfunction()

# Every method's file, methods/peft_method_<name>.c: <name> is the method's
# name in peft_formats.h and CONFIG_PEFT_METHOD_<NAME> selects the file.
file(GLOB method_sources CONFIGURE_DEPENDS ${PEFT_LIB_DIR}/methods/peft_method_*.c)
list(SORT method_sources)
set(PEFT_METHODS)
foreach(source ${method_sources})
  get_filename_component(file_name ${source} NAME_WE)
  string(REPLACE "peft_method_" "" method ${file_name})
  string(TOUPPER ${method} upper)
  list(APPEND PEFT_METHODS ${method})
  set(PEFT_METHOD_SOURCE_${upper} ${source})
endforeach()
