/**
 * @file peft_abi.h
 * @brief Sizes and field offsets of the public structs, for bindings that mirror them.
 *
 * A foreign-function binding (the Python ctypes one) declares its own copies of
 * peft_trainer, peft_param_info ... and must agree with the compiler's layout;
 * it asks for every size and offset here instead of guessing.
 */
#ifndef PEFT_ABI_H
#define PEFT_ABI_H

#include <stddef.h>

#include "peft/peft_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup peft_abi Struct layout queries
 * @{
 */

/**
 * @brief sizeof or offsetof of a public struct or field.
 * @param name  "<struct>" for its size (e.g. "peft_plan"), "<struct>.<field>" for
 *              a field's offset (e.g. "peft_trainer.step").
 * @param value receives the number of bytes.
 * @return PEFT_OK, or PEFT_ERR_ARG for a NULL argument or a name it does not know.
 */
peft_status peft_abi_query(const char *name, size_t *value);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_ABI_H */
