/* Shared between the trainer's source files (private to lib/peft). */
#ifndef PEFT_TRAINER_INTERNAL_H
#define PEFT_TRAINER_INTERNAL_H

#include <stdint.h>

#include "peft/peft_trainer.h"

/* The float buffer at an arena offset, or NULL for PEFT_NONE. */
float *peft_arena_f32(const peft_trainer *t, uint32_t offset);

#endif /* PEFT_TRAINER_INTERNAL_H */
