/* Sparse update: weights and biases of the layers the planner chose.
 * Pure data: the shared forward/backward path trains the arrays named
 * below (trainable weights run the float32 kernels on their copies in RAM). */
#include "peft_method.h"

const peft_method peft_method_sparse = {
	.flag = PEFT_METHOD_SPARSE,
	.name = "sparse",
	.trains = (1u << PEFT_PARAM_WEIGHT) | (1u << PEFT_PARAM_BIAS),
};
