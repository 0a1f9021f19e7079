/* SGD with momentum and Adam over float32 arrays (include/peft/peft_optim.h).
 * Both are compiled always; the plan loader refuses an optimizer whose
 * CONFIG_PEFT_OPTIMIZER_* is off, so an unused one costs only its code. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "peft/peft_optim.h"

peft_status peft_sgd_step_f32(const peft_sgd_params *p, int32_t n, float *param, const float *grad,
			      float *velocity, float grad_scale)
{
	if (p == NULL || n <= 0 || param == NULL || grad == NULL ||
	    (p->momentum != 0.0f && velocity == NULL)) {
		return PEFT_ERR_ARG;
	}
	bool finite = true;

	for (int32_t i = 0; i < n; i++) {
		float g = grad[i] * grad_scale + p->weight_decay * param[i];

		if (p->momentum != 0.0f) {
			velocity[i] = p->momentum * velocity[i] + g;
			g = velocity[i];
		}
		param[i] -= p->lr * g;
		finite = finite && isfinite(param[i]);
	}
	return finite ? PEFT_OK : PEFT_ERR_NUMERIC;
}

peft_status peft_adam_step_f32(const peft_adam_params *p, int32_t n, float *param,
			       const float *grad, float *m, float *v, float grad_scale)
{
	if (p == NULL || n <= 0 || param == NULL || grad == NULL || m == NULL || v == NULL ||
	    p->step == 0) {
		return PEFT_ERR_ARG;
	}
	/* Bias corrections in double: beta^t underflows float precision late. */
	const float c1 = (float)(1.0 - pow((double)p->beta1, (double)p->step));
	const float c2 = (float)(1.0 - pow((double)p->beta2, (double)p->step));
	bool finite = true;

	for (int32_t i = 0; i < n; i++) {
		const float g = grad[i] * grad_scale + p->weight_decay * param[i];

		m[i] = p->beta1 * m[i] + (1.0f - p->beta1) * g;
		v[i] = p->beta2 * v[i] + (1.0f - p->beta2) * g * g;
		const float m_hat = m[i] / c1;
		const float v_hat = v[i] / c2;

		param[i] -= p->lr * m_hat / (sqrtf(v_hat) + p->eps);
		finite = finite && isfinite(param[i]);
	}
	return finite ? PEFT_OK : PEFT_ERR_NUMERIC;
}

peft_status peft_sum_squares_f32(int32_t n, const float *x, float *sum)
{
	if (n <= 0 || x == NULL || sum == NULL) {
		return PEFT_ERR_ARG;
	}
	float acc = 0.0f;

	for (int32_t i = 0; i < n; i++) {
		acc += x[i] * x[i];
	}
	*sum += acc;
	return PEFT_OK;
}
