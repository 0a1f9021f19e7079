/**
 * @file peft_state.h
 * @brief Trained-state blob: trainable parameters + optimizer state + step counter.
 *
 * Layout in docs/formats.md ("Trained-state blob"). The blob names the plan it
 * was saved for (the plan's CRC32), and carries caller metadata: the epoch, and
 * a sequence number with which a device that writes two flash slots in turn
 * picks the newest valid one after a power cut.
 */
#ifndef PEFT_STATE_H
#define PEFT_STATE_H

#include <stdint.h>

#include "peft/peft_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup peft_state Trained state
 * @{
 */

/* PEFT_STATE_VERSION, PEFT_STATE_HEADER_SIZE (the parameters follow the
 * header) and the header's field offsets: peft/peft_formats.h. */

/** Caller metadata stored in a state blob. */
typedef struct {
	uint32_t epoch;    /**< Training epoch reached. */
	uint32_t sequence; /**< Increases by one per save (two-slot flash scheme). */
} peft_state_meta;

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_STATE_H */
