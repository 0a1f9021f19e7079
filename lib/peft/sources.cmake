# The runtime's sources, shared by the Zephyr, host and Cortex-M4F builds.
# Each method's code sits in methods/peft_method_<name>.c so that Kconfig can
# leave it out; everything else is common.
set(PEFT_LIB_DIR ${CMAKE_CURRENT_LIST_DIR})
get_filename_component(PEFT_INCLUDE_DIR ${CMAKE_CURRENT_LIST_DIR}/../../include ABSOLUTE)

file(GLOB PEFT_COMMON_SOURCES CONFIGURE_DEPENDS
  ${PEFT_LIB_DIR}/common/*.c
  ${PEFT_LIB_DIR}/kernels/*/*.c
  ${PEFT_LIB_DIR}/optim/*.c
  ${PEFT_LIB_DIR}/plan/*.c
  ${PEFT_LIB_DIR}/runtime/*.c)
list(SORT PEFT_COMMON_SOURCES)

# Method name (file suffix) -> Kconfig symbol suffix.
set(PEFT_METHODS full last_layer bitfit scale_shift lora sparse)
foreach(method ${PEFT_METHODS})
  string(TOUPPER ${method} upper)
  set(PEFT_METHOD_SOURCE_${upper} ${PEFT_LIB_DIR}/methods/peft_method_${method}.c)
endforeach()
