/*
 * Partitions of the sample (devicetree labels peft_model, peft_dataset,
 * peft_state0, peft_state1) and in-place read access to their bytes.
 */
#ifndef FLASH_MAP_VIEW_H
#define FLASH_MAP_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include <zephyr/storage/flash_map.h>

/** An open partition and, where the flash is readable in place, its bytes. */
struct partition_view {
	const struct flash_area *fa;
	const uint8_t *data; /**< fa_size bytes, read in place (XIP or the simulator). */
	size_t size;
	const char *name;
};

/**
 * @brief Open a fixed partition and map it for in-place reading.
 * @return 0, -ENOENT if the partition is absent, -EIO if it cannot be opened
 *         or mapped.
 */
int partition_view_open(struct partition_view *view, uint8_t id, const char *name);

#endif /* FLASH_MAP_VIEW_H */
