/**
 * @file peft_status.h
 * @brief Status codes returned by every micropeft function.
 */
#ifndef PEFT_STATUS_H
#define PEFT_STATUS_H

#include "peft/peft_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup peft_status Status codes
 * @{
 * Every call returns one of these; every call site checks it. Each plan or
 * blob failure has its own code so that a device can say exactly what is wrong.
 * The numeric values are part of the ABI (the Python binding uses the same
 * description, micropeft.formats.Status).
 */
/* typedef enum { PEFT_OK = 0, PEFT_ERR_* ... } peft_status: generated from
 * scripts/micropeft/formats/enums.py (Status) into peft/peft_formats.h. */

/** @brief A short, constant, human-readable name for a status code. */
const char *peft_status_str(peft_status status);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_STATUS_H */
