#include "peft/peft_status.h"

const char *peft_status_str(peft_status status)
{
	switch (status) {
	case PEFT_OK: return "ok";
	case PEFT_ERR_ARG: return "invalid argument";
	case PEFT_ERR_BUFFER_TOO_SMALL: return "buffer too small";
	case PEFT_ERR_UNSUPPORTED: return "unsupported operator or shape";
	case PEFT_ERR_NUMERIC: return "NaN or infinity in loss, gradient or update";
	case PEFT_ERR_DIVERGED: return "training diverged (loss or parameter beyond its bound)";
	case PEFT_ERR_LOGITS_NONFINITE: return "NaN or infinity in the logits";
	case PEFT_ERR_PARAMS_NONFINITE: return "NaN or infinity in the parameters";
	case PEFT_ERR_PLAN_TRUNCATED: return "plan truncated";
	case PEFT_ERR_PLAN_MAGIC: return "plan: bad magic";
	case PEFT_ERR_PLAN_VERSION: return "plan: unsupported version";
	case PEFT_ERR_PLAN_LENGTH: return "plan: length mismatch";
	case PEFT_ERR_PLAN_CRC: return "plan: CRC mismatch";
	case PEFT_ERR_PLAN_MODEL_MISMATCH: return "plan: made for another model";
	case PEFT_ERR_PLAN_FIELD: return "plan: invalid field";
	case PEFT_ERR_PLAN_MODEL_OFFSET: return "plan: weight reference outside the model";
	case PEFT_ERR_PLAN_ARENA_OFFSET: return "plan: buffer offset disagrees with the runtime layout";
	case PEFT_ERR_PLAN_METHOD_NOT_COMPILED: return "plan: method not compiled in";
	case PEFT_ERR_PLAN_ALIGNMENT: return "plan or model not 4-byte aligned";
	case PEFT_ERR_PLAN_SHAPE: return "plan: tensor shape beyond the runtime's bound";
	case PEFT_ERR_STATE_TRUNCATED: return "state truncated";
	case PEFT_ERR_STATE_MAGIC: return "state: bad magic";
	case PEFT_ERR_STATE_VERSION: return "state: unsupported version";
	case PEFT_ERR_STATE_LENGTH: return "state: length mismatch";
	case PEFT_ERR_STATE_CRC: return "state: CRC mismatch";
	case PEFT_ERR_STATE_PLAN_MISMATCH: return "state: saved for another plan";
	case PEFT_ERR_STATE_NONFINITE: return "state: NaN or infinity in the stored values";
	}
	return "unknown status";
}
