/* BitFit: the biases of the marked layers.
 * Pure data: the shared forward/backward path trains the arrays named
 * below (trainable weights run the float32 kernels on their copies in RAM). */
#include "peft_method.h"

const peft_method peft_method_bitfit = {
	.flag = PEFT_METHOD_BITFIT,
	.name = "bitfit",
	.trains = (1u << PEFT_PARAM_BIAS),
};
