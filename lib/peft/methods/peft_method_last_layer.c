/* Last layer: weights and biases of the classifier head (the planner marks the head).
 * Pure data: the shared forward/backward path trains the arrays named
 * below (trainable weights run the float32 kernels on their copies in RAM). */
#include "peft_method.h"

const peft_method peft_method_last_layer = {
	.flag = PEFT_METHOD_LAST_LAYER,
	.name = "last_layer",
	.trains = (1u << PEFT_PARAM_WEIGHT) | (1u << PEFT_PARAM_BIAS),
};
