/* Shared between the trainer's source files (private to lib/peft). */
#ifndef PEFT_TRAINER_INTERNAL_H
#define PEFT_TRAINER_INTERNAL_H

#include <stdint.h>

#include "peft/peft_trainer.h"

/* The float buffer at an arena offset, or NULL for PEFT_NONE. */
float *peft_arena_f32(const peft_trainer *t, uint32_t offset);

/* No forward awaits its backward (after any call that overwrites its buffers). */
static inline void peft_trainer_clear_pending(peft_trainer *t)
{
	t->pending_label = -1;
	t->pending_labels = NULL;
	t->pending_samples = 0;
}

#endif /* PEFT_TRAINER_INTERNAL_H */
