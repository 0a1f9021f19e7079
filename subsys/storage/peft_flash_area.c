/* A Zephyr fixed partition as a peft_flash region (see peft_flash_area.h). */
#include "peft/storage/peft_flash_area.h"

#include <errno.h>

#include <zephyr/devicetree.h>
#include <zephyr/drivers/flash.h>
#include <zephyr/sys/util.h>

#if DT_HAS_COMPAT_STATUS_OKAY(zephyr_sim_flash)
#include <zephyr/drivers/flash/flash_simulator.h>
#endif

static const struct flash_area *area_of(const struct peft_flash *flash)
{
	return CONTAINER_OF(flash, const struct peft_flash_area, flash)->fa;
}

static int area_read(const struct peft_flash *flash, uint32_t offset, void *dst, size_t len)
{
	return flash_area_read(area_of(flash), (off_t)offset, dst, len);
}

static int area_write(const struct peft_flash *flash, uint32_t offset, const void *src, size_t len)
{
	return flash_area_write(area_of(flash), (off_t)offset, src, len);
}

static int area_erase(const struct peft_flash *flash, uint32_t offset, size_t len)
{
	return flash_area_erase(area_of(flash), (off_t)offset, len);
}

/* Where the partition's bytes can be read in place. */
static const uint8_t *map(const struct flash_area *fa)
{
#if DT_HAS_COMPAT_STATUS_OKAY(zephyr_sim_flash)
	if (fa->fa_dev == DEVICE_DT_GET_ONE(zephyr_sim_flash)) {
		size_t sim_size = 0;
		const uint8_t *base = flash_simulator_get_memory(fa->fa_dev, &sim_size);

		if (base == NULL || (size_t)fa->fa_off + fa->fa_size > sim_size) {
			return NULL;
		}
		return base + fa->fa_off;
	}
#endif
	/* Internal flash is mapped at the address of the zephyr,flash node. */
	return (const uint8_t *)(uintptr_t)(DT_REG_ADDR(DT_CHOSEN(zephyr_flash)) + fa->fa_off);
}

int peft_flash_area_open(struct peft_flash_area *area, uint8_t id, const char *name)
{
	struct flash_pages_info page;

	area->name = name;
	area->data = NULL;
	area->size = 0;
	if (flash_area_open(id, &area->fa) != 0) {
		return -ENOENT;
	}
	area->size = area->fa->fa_size;
	area->data = map(area->fa);
	if (area->data == NULL ||
	    flash_get_page_info_by_offs(area->fa->fa_dev, area->fa->fa_off, &page) != 0) {
		return -EIO;
	}
	area->flash = (struct peft_flash){
		.read = area_read,
		.write = area_write,
		.erase = area_erase,
		.size = (uint32_t)area->fa->fa_size,
		.erase_size = (uint32_t)page.size,
		.write_size = (uint32_t)flash_area_align(area->fa),
	};
	return 0;
}
