/*
 * In-place access to partitions: the model's weights are read where they
 * lie (the nRF52840's flash is memory-mapped; native_sim's flash simulator
 * hands out its backing memory), so the model costs no RAM.
 */
#include "flash_map_view.h"

#include <errno.h>

#include <zephyr/devicetree.h>
#include <zephyr/drivers/flash.h>

#if DT_HAS_COMPAT_STATUS_OKAY(zephyr_sim_flash)
#include <zephyr/drivers/flash/flash_simulator.h>
#endif

int partition_view_open(struct partition_view *view, uint8_t id, const char *name)
{
	view->name = name;
	view->data = NULL;
	view->size = 0;
	if (flash_area_open(id, &view->fa) != 0) {
		return -ENOENT;
	}
	view->size = view->fa->fa_size;
#if DT_HAS_COMPAT_STATUS_OKAY(zephyr_sim_flash)
	size_t sim_size = 0;
	const uint8_t *base = flash_simulator_get_memory(view->fa->fa_dev, &sim_size);

	if (base == NULL || (size_t)view->fa->fa_off + view->size > sim_size) {
		return -EIO;
	}
	view->data = base + view->fa->fa_off;
#else
	/* Internal flash is mapped at the address of the zephyr,flash node. */
	view->data = (const uint8_t *)(uintptr_t)(DT_REG_ADDR(DT_CHOSEN(zephyr_flash)) +
						  view->fa->fa_off);
#endif
	return 0;
}
