/* Internal to lib/peft: propagate a non-OK status to the caller. */
#ifndef PEFT_TRY_H
#define PEFT_TRY_H

#include "peft/peft_status.h"

#define PEFT_TRY(expr)                                                                             \
	do {                                                                                       \
		peft_status peft_try_status_ = (expr);                                             \
		if (peft_try_status_ != PEFT_OK) {                                                 \
			return peft_try_status_;                                                   \
		}                                                                                  \
	} while (0)

#endif /* PEFT_TRY_H */
