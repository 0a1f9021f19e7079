/**
 * @file peft_flash_area.h
 * @brief Zephyr adapter of the storage library: a fixed partition as a peft_flash
 *        region, plus in-place read access to its bytes.
 *
 * The model's weights are read where they lie (the nRF52840's flash is
 * memory-mapped; the flash simulator hands out its backing memory), so the
 * model costs no RAM. Needs CONFIG_FLASH_MAP and CONFIG_FLASH_PAGE_LAYOUT.
 */
#ifndef PEFT_STORAGE_PEFT_FLASH_AREA_H
#define PEFT_STORAGE_PEFT_FLASH_AREA_H

#include <stddef.h>
#include <stdint.h>

#include <zephyr/storage/flash_map.h>

#include "peft/storage/peft_flash.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An open partition. */
struct peft_flash_area {
	struct peft_flash flash; /**< The three calls over it (first member). */
	const struct flash_area *fa;
	const uint8_t *data; /**< fa_size bytes, read in place. */
	size_t size;
	const char *name;
};

/**
 * @brief Open a fixed partition as a region and map it for in-place reading.
 * @return 0, -ENOENT if the partition is absent, -EIO if it cannot be opened,
 *         mapped, or its page layout read.
 */
int peft_flash_area_open(struct peft_flash_area *area, uint8_t id, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* PEFT_STORAGE_PEFT_FLASH_AREA_H */
