/* Full fine-tuning: every weight and bias of the trainable part.
 * Pure data: the shared forward/backward path trains the arrays named
 * below (trainable weights run the float32 kernels on their copies in RAM). */
#include "peft_method.h"

const peft_method peft_method_full = {
	.flag = PEFT_METHOD_FULL,
	.name = "full",
	.trains = (1u << PEFT_PARAM_WEIGHT) | (1u << PEFT_PARAM_BIAS),
};
