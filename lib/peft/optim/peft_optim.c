/* SGD with momentum and Adam over float32 arrays (include/peft/peft_optim.h).
 * Both are compiled always; the plan loader refuses an optimizer whose
 * CONFIG_PEFT_OPTIMIZER_* is off, so an unused one costs only its code. */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "../common/peft_try.h"
#include "peft/peft_optim.h"

/* One element of each update, shared by the step and its dry run so that
 * both compute the same values. */
static inline float sgd_direction(const peft_sgd_params *p, float param, float grad, float *vel,
				  float grad_scale)
{
	float g = grad * grad_scale + p->weight_decay * param;

	if (p->momentum != 0.0f) {
		*vel = p->momentum * *vel + g;
		g = *vel;
	}
	return g;
}

static inline float adam_update(const peft_adam_params *p, float param, float grad, float *m,
				float *v, float grad_scale, float c1, float c2)
{
	const float g = grad * grad_scale + p->weight_decay * param;

	*m = p->beta1 * *m + (1.0f - p->beta1) * g;
	*v = p->beta2 * *v + (1.0f - p->beta2) * g * g;
	return param - p->lr * (*m / c1) / (sqrtf(*v / c2) + p->eps);
}

/* Bias corrections in single precision, as TensorFlow's Adam computes them
 * (float32 pow of beta and the step). A double pow here would be the only
 * double arithmetic in lib/peft, done in software on a single-precision FPU. */
static void adam_corrections(const peft_adam_params *p, float *c1, float *c2)
{
	*c1 = 1.0f - powf(p->beta1, (float)p->step);
	*c2 = 1.0f - powf(p->beta2, (float)p->step);
}

/* A new value is acceptable: finite, and inside +-max_abs unless it moves inward. */
static inline peft_status value_ok(float old_value, float new_value, float max_abs)
{
	if (!isfinite(new_value)) {
		return PEFT_ERR_NUMERIC;
	}
	if (fabsf(new_value) > max_abs && fabsf(new_value) > fabsf(old_value)) {
		return PEFT_ERR_DIVERGED;
	}
	return PEFT_OK;
}

/* 1 where x is not finite: a comparison (NaN fails it), so that a loop
 * accumulating it has no branch and vectorizes on hosts. */
static inline int32_t not_finite(float x)
{
	return !(fabsf(x) <= FLT_MAX);
}

/* The update's loop, with momentum or without (a constant where it is
 * called: each loop has no branch, and vectorizes on hosts); 1 where a new
 * value is not finite. */
static inline int32_t sgd_step_loop(const peft_sgd_params *p, int32_t n, float *param,
				    const float *grad, float *velocity, float grad_scale,
				    bool momentum)
{
	int32_t bad = 0;

	for (int32_t i = 0; i < n; i++) {
		float vel = momentum ? velocity[i] : 0.0f;
		const float g = sgd_direction(p, param[i], grad[i], &vel, grad_scale);

		if (momentum) {
			velocity[i] = vel;
		}
		param[i] -= p->lr * g;
		bad |= not_finite(param[i]);
	}
	return bad;
}

peft_status peft_sgd_step_f32(const peft_sgd_params *p, int32_t n, float *param, const float *grad,
			      float *velocity, float grad_scale)
{
	if (p == NULL || n <= 0 || param == NULL || grad == NULL ||
	    (p->momentum != 0.0f && velocity == NULL)) {
		return PEFT_ERR_ARG;
	}
	const peft_sgd_params local = *p; /* param may alias *p as far as a compiler knows */
	const int32_t bad =
		local.momentum != 0.0f
			? sgd_step_loop(&local, n, param, grad, velocity, grad_scale, true)
			: sgd_step_loop(&local, n, param, grad, NULL, grad_scale, false);

	return bad == 0 ? PEFT_OK : PEFT_ERR_NUMERIC;
}

/* The dry run element by element, stopping at the first bad value (whose
 * status it returns). */
static peft_status sgd_check_each(const peft_sgd_params *p, int32_t n, const float *param,
				  const float *grad, const float *velocity, float grad_scale,
				  float max_abs)
{
	for (int32_t i = 0; i < n; i++) {
		float vel = p->momentum != 0.0f ? velocity[i] : 0.0f;
		const float g = sgd_direction(p, param[i], grad[i], &vel, grad_scale);

		if (!isfinite(vel)) {
			return PEFT_ERR_NUMERIC;
		}
		PEFT_TRY(value_ok(param[i], param[i] - p->lr * g, max_abs));
	}
	return PEFT_OK;
}

/* A branch-free pass finds whether any value is bad (the usual answer: none);
 * only then does sgd_check_each find the first and its status. */
peft_status peft_sgd_check_f32(const peft_sgd_params *p, int32_t n, const float *param,
			       const float *grad, const float *velocity, float grad_scale,
			       float max_abs)
{
	if (p == NULL || n <= 0 || param == NULL || grad == NULL ||
	    (p->momentum != 0.0f && velocity == NULL)) {
		return PEFT_ERR_ARG;
	}
	int32_t bad = 0;

	for (int32_t i = 0; i < n; i++) {
		float vel = p->momentum != 0.0f ? velocity[i] : 0.0f;
		const float g = sgd_direction(p, param[i], grad[i], &vel, grad_scale);
		const float next = param[i] - p->lr * g;

		bad |= not_finite(vel) | not_finite(next) |
		       ((fabsf(next) > max_abs) & (fabsf(next) > fabsf(param[i])));
	}
	return bad == 0 ? PEFT_OK
			: sgd_check_each(p, n, param, grad, velocity, grad_scale, max_abs);
}

peft_status peft_adam_step_f32(const peft_adam_params *p, int32_t n, float *param,
			       const float *grad, float *m, float *v, float grad_scale)
{
	if (p == NULL || n <= 0 || param == NULL || grad == NULL || m == NULL || v == NULL ||
	    p->step == 0) {
		return PEFT_ERR_ARG;
	}
	const peft_adam_params local = *p; /* param may alias *p as far as a compiler knows */
	float c1, c2;
	int32_t bad = 0;

	adam_corrections(&local, &c1, &c2);
	for (int32_t i = 0; i < n; i++) {
		param[i] = adam_update(&local, param[i], grad[i], &m[i], &v[i], grad_scale, c1, c2);
		bad |= not_finite(param[i]);
	}
	return bad == 0 ? PEFT_OK : PEFT_ERR_NUMERIC;
}

/* The dry run element by element, stopping at the first bad value (whose
 * status it returns). */
static peft_status adam_check_each(const peft_adam_params *p, int32_t n, const float *param,
				   const float *grad, const float *m, const float *v,
				   float grad_scale, float max_abs, float c1, float c2)
{
	for (int32_t i = 0; i < n; i++) {
		float mi = m[i], vi = v[i];
		const float next = adam_update(p, param[i], grad[i], &mi, &vi, grad_scale, c1, c2);

		if (!isfinite(mi) || !isfinite(vi)) {
			return PEFT_ERR_NUMERIC;
		}
		PEFT_TRY(value_ok(param[i], next, max_abs));
	}
	return PEFT_OK;
}

/* As peft_sgd_check_f32: a branch-free pass says whether any value is bad,
 * adam_check_each then finds the first. */
peft_status peft_adam_check_f32(const peft_adam_params *p, int32_t n, const float *param,
				const float *grad, const float *m, const float *v, float grad_scale,
				float max_abs)
{
	if (p == NULL || n <= 0 || param == NULL || grad == NULL || m == NULL || v == NULL ||
	    p->step == 0) {
		return PEFT_ERR_ARG;
	}
	const peft_adam_params local = *p;
	float c1, c2;
	int32_t bad = 0;

	adam_corrections(&local, &c1, &c2);
	for (int32_t i = 0; i < n; i++) {
		float mi = m[i], vi = v[i];
		const float next =
			adam_update(&local, param[i], grad[i], &mi, &vi, grad_scale, c1, c2);

		bad |= not_finite(mi) | not_finite(vi) | not_finite(next) |
		       ((fabsf(next) > max_abs) & (fabsf(next) > fabsf(param[i])));
	}
	return bad == 0
		       ? PEFT_OK
		       : adam_check_each(&local, n, param, grad, m, v, grad_scale, max_abs, c1, c2);
}

/* One sum in order (partial sums would vectorize, but change the clipping
 * factor's rounding and so every trajectory). */
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

float peft_optimizer_lr(const peft_optimizer_config *config, uint32_t step)
{
	const uint32_t n = config->lr_decay_steps;

	if (n == 0u) {
		return config->lr;
	}
	const uint32_t done = step == 0u ? 0u : step - 1u;

	return done >= n ? 0.0f : config->lr * ((float)(n - done) / (float)n);
}
