/*
 * Flash simulator (native_sim, QEMU boards): built-in demo images (data/demo_model.bin,
 * demo_dataset.bin) written into a blank flash simulator, so that the sample runs (and twister
 * passes) without a flash file. A flash file given with --flash=<file> that holds images wins.
 */
#ifndef BUILTIN_IMAGES_H
#define BUILTIN_IMAGES_H

#include "peft/storage/peft_flash_area.h"

/**
 * @brief If peft_model is blank, program the built-in images into peft_model and
 *        peft_dataset.
 * @return 0 (also when nothing was written), -EIO on a flash error.
 */
int builtin_images_install(const struct peft_flash_area *model, const struct peft_flash_area *data);

#endif /* BUILTIN_IMAGES_H */
