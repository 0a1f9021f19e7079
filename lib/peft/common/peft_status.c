#include "peft/peft_status.h"

const char *peft_status_str(peft_status status)
{
	switch (status) {
#define PEFT_STATUS_CASE(code, text)                                                               \
	case code:                                                                                 \
		return text;
		PEFT_STATUS_LIST(PEFT_STATUS_CASE)
#undef PEFT_STATUS_CASE
	}
	return "unknown status";
}
