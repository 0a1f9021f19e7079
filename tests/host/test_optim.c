/* The optimizer's branch-free passes against hand-computed cases: the dry run
 * reports the status of the first bad element (its fast pass only says that
 * there is one), the update flags a non-finite result, and the sum of squares
 * matches a double-precision sum at every length up to 37. */
#include <float.h>
#include <math.h>

#include "peft/peft_optim.h"
#include "peft_test.h"

#define N 37

static void fill(float *param, float *grad, float *vel)
{
	for (int i = 0; i < N; i++) {
		param[i] = 0.5f + 0.01f * (float)i;
		grad[i] = 0.1f * (float)(i % 5) - 0.2f;
		vel[i] = 0.0f;
	}
}

static void test_check_reports_the_first_bad_element(void)
{
	float param[N], grad[N], vel[N];
	const peft_sgd_params sgd = {0.1f, 0.9f, 0.0f};

	for (int momentum = 0; momentum < 2; momentum++) {
		const peft_sgd_params p = {sgd.lr, momentum ? sgd.momentum : 0.0f, 0.0f};

		fill(param, grad, vel);
		PEFT_CHECK_EQ_INT(peft_sgd_check_f32(&p, N, param, grad, vel, 1.0f, 10.0f),
				  PEFT_OK);
		/* element 30 leaves +-10 outward, element 33 becomes NaN: the first decides */
		grad[30] = -1000.0f;
		grad[33] = NAN;
		PEFT_CHECK_EQ_INT(peft_sgd_check_f32(&p, N, param, grad, vel, 1.0f, 10.0f),
				  PEFT_ERR_DIVERGED);
		grad[3] = INFINITY;
		PEFT_CHECK_EQ_INT(peft_sgd_check_f32(&p, N, param, grad, vel, 1.0f, 10.0f),
				  PEFT_ERR_NUMERIC);
		/* a value beyond the bound that moves inward is accepted */
		fill(param, grad, vel);
		param[7] = 20.0f;
		grad[7] = 1.0f;
		PEFT_CHECK_EQ_INT(peft_sgd_check_f32(&p, N, param, grad, vel, 1.0f, 10.0f),
				  PEFT_OK);
	}
}

static void test_step_updates_and_flags_overflow(void)
{
	float param[N], grad[N], vel[N];
	const peft_sgd_params p = {0.5f, 0.0f, 0.0f};

	fill(param, grad, vel);
	PEFT_CHECK_EQ_INT(peft_sgd_step_f32(&p, N, param, grad, vel, 2.0f), PEFT_OK);
	for (int i = 0; i < N; i++) {
		const float want = (0.5f + 0.01f * (float)i) - 0.5f * (grad[i] * 2.0f);

		PEFT_CHECK(param[i] == want);
	}
	param[20] = FLT_MAX;
	grad[20] = -FLT_MAX;
	PEFT_CHECK_EQ_INT(peft_sgd_step_f32(&p, N, param, grad, vel, 4.0f), PEFT_ERR_NUMERIC);
}

/* Adam's dry run: the first bad element decides; its update flags overflow and
 * matches the update written out by hand (one step from zero moments). */
static void test_adam_check_and_step(void)
{
	float param[N], grad[N], vel[N], m[N], v[N];
	const peft_adam_params p = {0.01f, 0.9f, 0.999f, 1e-7f, 0.0f, 1};

	fill(param, grad, vel);
	for (int i = 0; i < N; i++) {
		m[i] = 0.0f, v[i] = 0.0f;
	}
	PEFT_CHECK_EQ_INT(peft_adam_check_f32(&p, N, param, grad, m, v, 1.0f, 10.0f), PEFT_OK);
	/* Adam's first step moves each value by about lr: a bound just above the values
	 * makes the growing ones diverge; a NaN gradient after them does not decide */
	grad[33] = NAN;
	PEFT_CHECK_EQ_INT(peft_adam_check_f32(&p, N, param, grad, m, v, 1.0f, 0.5f),
			  PEFT_ERR_DIVERGED);
	grad[0] = NAN;
	PEFT_CHECK_EQ_INT(peft_adam_check_f32(&p, N, param, grad, m, v, 1.0f, 0.5f),
			  PEFT_ERR_NUMERIC);
	fill(param, grad, vel);
	PEFT_CHECK_EQ_INT(peft_adam_step_f32(&p, N, param, grad, m, v, 1.0f), PEFT_OK);
	for (int i = 0; i < N; i++) {
		const float g = grad[i];
		const float mi = (1.0f - 0.9f) * g, vi = (1.0f - 0.999f) * g * g;
		const float c1 = 1.0f - powf(0.9f, 1.0f), c2 = 1.0f - powf(0.999f, 1.0f);
		const float want =
			(0.5f + 0.01f * (float)i) - 0.01f * (mi / c1) / (sqrtf(vi / c2) + 1e-7f);

		PEFT_CHECK(m[i] == mi && v[i] == vi);
		PEFT_CHECK_NEAR(param[i], want, 1e-6);
	}
	grad[5] = INFINITY;
	PEFT_CHECK_EQ_INT(peft_adam_step_f32(&p, N, param, grad, m, v, 1.0f), PEFT_ERR_NUMERIC);
}

static void test_sum_squares(void)
{
	float x[N];

	for (int n = 1; n <= N; n++) {
		double want = 1.5;

		for (int i = 0; i < n; i++) {
			x[i] = sinf(0.7f * (float)i) * (float)(i + 1);
			want += (double)x[i] * (double)x[i];
		}
		float sum = 1.5f;

		PEFT_CHECK_EQ_INT(peft_sum_squares_f32(n, x, &sum), PEFT_OK);
		PEFT_CHECK_NEAR(sum, want, 1e-5 * want);
	}
	x[35] = NAN;
	float sum = 0.0f;

	PEFT_CHECK_EQ_INT(peft_sum_squares_f32(N, x, &sum), PEFT_OK);
	PEFT_CHECK(isnan(sum));
}

int main(void)
{
	test_check_reports_the_first_bad_element();
	test_step_updates_and_flags_overflow();
	test_adam_check_and_step();
	test_sum_squares();
	return 0;
}
