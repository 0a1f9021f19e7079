/* SOFTMAX + cross-entropy (natural log). Stable form: with m = max(logits),
 * probs = exp(l - m) / sum(exp(l - m)) and
 * loss = log(sum(exp(l - m))) - (l[label] - m) (log-sum-exp), so no exp
 * overflows and the loss never takes the log of a rounded-to-zero
 * probability. */
#include <math.h>
#include <stddef.h>

#include "peft/peft_kernels.h"

peft_status peft_softmax_xent_fwd_f32(int32_t n, const float *logits, int32_t label, float *probs,
				      float *loss)
{
	if (n <= 0 || logits == NULL || label < 0 || label >= n || probs == NULL || loss == NULL) {
		return PEFT_ERR_ARG;
	}
	int32_t arg_max = 0;

	for (int32_t i = 1; i < n; i++) {
		if (logits[i] > logits[arg_max]) {
			arg_max = i;
		}
	}
	const float max = logits[arg_max];
	/* sum = 1 + rest (the max term is exp(0)); log1pf(rest) keeps the loss
	 * accurate when the label dominates and the loss is tiny. */
	float rest = 0.0f;

	for (int32_t i = 0; i < n; i++) {
		probs[i] = i == arg_max ? 1.0f : expf(logits[i] - max);
		if (i != arg_max) {
			rest += probs[i];
		}
	}
	const float sum = 1.0f + rest;

	for (int32_t i = 0; i < n; i++) {
		probs[i] /= sum;
	}
	*loss = log1pf(rest) - (logits[label] - max);
	return isfinite(*loss) ? PEFT_OK : PEFT_ERR_NUMERIC;
}

peft_status peft_softmax_xent_bwd_f32(int32_t n, const float *probs, int32_t label,
				      float *grad_logits)
{
	if (n <= 0 || probs == NULL || label < 0 || label >= n || grad_logits == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < n; i++) {
		grad_logits[i] = probs[i] - (i == label ? 1.0f : 0.0f);
	}
	return PEFT_OK;
}
