# The runtime's sources, shared by the Zephyr, host and Cortex-M4F builds.
# Each method's code sits in methods/peft_method_<name>.c so that Kconfig can
# leave it out; everything else is common. scripts/micropeft/cm4.py mirrors
# these rules for the Cortex-M4F build.
set(PEFT_LIB_DIR ${CMAKE_CURRENT_LIST_DIR})
get_filename_component(PEFT_INCLUDE_DIR ${CMAKE_CURRENT_LIST_DIR}/../../include ABSOLUTE)

file(GLOB PEFT_COMMON_SOURCES CONFIGURE_DEPENDS
  ${PEFT_LIB_DIR}/common/*.c
  ${PEFT_LIB_DIR}/optim/*.c
  ${PEFT_LIB_DIR}/plan/*.c
  ${PEFT_LIB_DIR}/runtime/*.c)
list(SORT PEFT_COMMON_SOURCES)

# Kernel backends: "reference" (kernels/<op>/, the readable reference) and
# "optimized" (kernels_optimized/<op>/: the same file and function names,
# register-blocked). An op without an optimized folder uses its reference
# folder in both; the choice is made here, never by #ifdef in a kernel. An op
# folder may also hold dsp/ and portable/ variants of the same file: dsp/ on
# cores with the DSP extension (`dsp` ON), portable/ otherwise.
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
    set(optimized ${PEFT_LIB_DIR}/kernels_optimized/${op})
    if(backend STREQUAL "optimized" AND IS_DIRECTORY ${optimized})
      set(dir ${optimized})
    endif()
    file(GLOB op_sources CONFIGURE_DEPENDS ${dir}/*.c)
    list(APPEND sources ${op_sources})
    if(IS_DIRECTORY ${dir}/dsp)
      if(dsp)
        file(GLOB variant CONFIGURE_DEPENDS ${dir}/dsp/*.c)
      else()
        file(GLOB variant CONFIGURE_DEPENDS ${dir}/portable/*.c)
      endif()
      list(APPEND sources ${variant})
    endif()
  endforeach()
  list(SORT sources)
  set(${out_var} ${sources} PARENT_SCOPE)
endfunction()

# Method name (file suffix) -> Kconfig symbol suffix.
set(PEFT_METHODS full last_layer bitfit scale_shift lora sparse dora ia3)
foreach(method ${PEFT_METHODS})
  string(TOUPPER ${method} upper)
  set(PEFT_METHOD_SOURCE_${upper} ${PEFT_LIB_DIR}/methods/peft_method_${method}.c)
endforeach()
