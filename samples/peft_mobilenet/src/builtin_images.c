/* Built-in demo images for a blank native_sim flash (see builtin_images.h). */
#include "builtin_images.h"

#include <errno.h>

#include <zephyr/sys/printk.h>

static const uint8_t demo_model[] __aligned(16) = {
#include "demo_model.inc"
};

static const uint8_t demo_dataset[] __aligned(16) = {
#include "demo_dataset.inc"
};

static int blank(const struct peft_flash_area *v)
{
	for (size_t i = 0; i < 64u && i < v->size; i++) {
		if (v->data[i] != 0xFFu) {
			return 0;
		}
	}
	return 1;
}

static int program(const struct peft_flash_area *v, const uint8_t *img, size_t len)
{
	if (len > v->size || flash_area_erase(v->fa, 0, v->size) != 0 ||
	    flash_area_write(v->fa, 0, img, len) != 0) {
		return -EIO;
	}
	return 0;
}

int builtin_images_install(const struct peft_flash_area *model, const struct peft_flash_area *data)
{
	if (!blank(model)) {
		return 0;
	}
	printk("flash is blank: writing the built-in demo images (%u B model+plan, %u B "
	       "dataset) to peft_model and peft_dataset\n",
	       (unsigned)sizeof(demo_model), (unsigned)sizeof(demo_dataset));
	if (program(model, demo_model, sizeof(demo_model)) != 0 ||
	    program(data, demo_dataset, sizeof(demo_dataset)) != 0) {
		printk("writing the built-in images failed\n");
		return -EIO;
	}
	return 0;
}
