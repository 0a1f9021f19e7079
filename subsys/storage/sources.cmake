# The storage library's portable sources (Zephyr and host builds), and its adapter.
set(PEFT_STORAGE_DIR ${CMAKE_CURRENT_LIST_DIR})
set(PEFT_STORAGE_SOURCES
  ${PEFT_STORAGE_DIR}/peft_images.c
  ${PEFT_STORAGE_DIR}/peft_state_store.c)
set(PEFT_STORAGE_FLASH_MAP_SOURCES ${PEFT_STORAGE_DIR}/peft_flash_area.c)
