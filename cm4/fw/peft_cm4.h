/*
 * What a firmware of this harness shares with the instruction-count plugin:
 * the marker function whose every call the plugin reports with the running
 * instruction count, and a log that says which phase each mark was.
 */
#ifndef PEFT_CM4_H
#define PEFT_CM4_H

#include <stdint.h>

/** Phase boundaries; the host pairs the i-th printed id with the i-th count. */
enum peft_cm4_phase {
	PEFT_CM4_FORWARD = 1,    /**< start of a sample's forward pass */
	PEFT_CM4_BACKWARD = 2,   /**< start of its backward pass (ends at the next mark) */
	PEFT_CM4_SAMPLE_END = 3, /**< unused by the trainer driver */
	PEFT_CM4_OPTIMIZER = 4,  /**< start of the optimizer step */
	PEFT_CM4_STEP_END = 5,
	PEFT_CM4_INFER = 6, /**< start of one inference (predict) */
	PEFT_CM4_INFER_END = 7,
	PEFT_CM4_REGION = 8, /**< free use (calibration firmware) */
	PEFT_CM4_REGION_END = 9,
};

/** Records a phase boundary (the plugin counts up to its first instruction). */
void peft_cm4_mark(uint32_t phase);

/** Prints "marks: id id ..." for every mark so far (call once, at the end). */
void peft_cm4_print_marks(void);

#endif /* PEFT_CM4_H */
