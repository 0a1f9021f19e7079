/**
 * @file peft_optim.h
 * @brief Optimizer primitives (SGD with momentum, Adam) over float32 arrays.
 *
 * The trainer calls these once per trainable array at each step. The gradient
 * buffers hold SUMS over the samples of a batch; @c grad_scale turns them into
 * the applied gradient (1 / samples, times the global-norm clipping factor), so
 * that the gradient buffers are read, never rewritten, by the optimizer.
 * Weight decay is the coupled (L2) form: it adds weight_decay * param to the
 * scaled gradient before the update, as torch.optim.SGD/Adam do.
 */
#ifndef PEFT_OPTIM_H
#define PEFT_OPTIM_H

#include <stdint.h>

#include "peft/peft_formats.h"
#include "peft/peft_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup peft_optim Optimizers
 * @{
 */

/* peft_optimizer_kind (PEFT_OPTIMIZER_SGD, _ADAM; the plan's codes): peft/peft_formats.h. */

/** Optimizer configuration as stored in the plan. */
typedef struct {
	peft_optimizer_kind kind;
	float lr;           /**< Learning rate (> 0). */
	float momentum;     /**< SGD momentum in [0, 1). */
	float beta1;        /**< Adam first-moment decay in [0, 1). */
	float beta2;        /**< Adam second-moment decay in [0, 1). */
	float eps;          /**< Adam denominator term (> 0). */
	float weight_decay; /**< Coupled L2 weight decay (>= 0). */
	float clip_norm;    /**< Global-norm clipping threshold; 0 disables it. */
	/** Linear decay of lr to 0 over this many updates (HF's "linear"); 0: constant;
	 * below PEFT_LR_DECAY_STEPS_LIMIT. */
	uint32_t lr_decay_steps;
} peft_optimizer_config;

/**
 * @brief The learning rate of update @p step (1 for the first): @c lr, or with
 *        @c lr_decay_steps = N, HF's linear schedule lr * (N - (step - 1)) / N,
 *        0 from update N + 1 on. Integers below 2^24 convert exactly, so the
 *        factor is one correctly rounded division, as in the TF reference.
 */
float peft_optimizer_lr(const peft_optimizer_config *config, uint32_t step);

/** Parameters of one SGD update. */
typedef struct {
	float lr;
	float momentum; /**< 0: plain SGD (velocity may then be NULL). */
	float weight_decay;
} peft_sgd_params;

/** Parameters of one Adam update. */
typedef struct {
	float lr;
	float beta1;
	float beta2;
	float eps;
	float weight_decay;
	uint32_t step; /**< 1 for the first update: the bias corrections use beta^step. */
} peft_adam_params;

/**
 * @brief One SGD-with-momentum update (PyTorch form).
 *
 * g = grad * grad_scale + weight_decay * param; v = momentum * v + g;
 * param -= lr * v. With momentum == 0: param -= lr * g and @p velocity is not used.
 *
 * @param p          update parameters.
 * @param n          number of elements (> 0).
 * @param param      parameters, updated in place.
 * @param grad       summed gradients (read only).
 * @param velocity   momentum buffer of n floats (zero before the first step); NULL allowed when
 *                   momentum == 0.
 * @param grad_scale factor applied to @p grad (mean over the batch, clipping).
 * @return PEFT_OK, PEFT_ERR_ARG on a bad argument, PEFT_ERR_NUMERIC if a result is not finite.
 */
peft_status peft_sgd_step_f32(const peft_sgd_params *p, int32_t n, float *param, const float *grad,
			      float *velocity, float grad_scale);

/**
 * @brief One bias-corrected Adam update (Kingma & Ba; PyTorch form).
 *
 * g = grad * grad_scale + weight_decay * param; m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; param -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 *
 * @param p          update parameters (p->step >= 1).
 * @param n          number of elements (> 0).
 * @param param      parameters, updated in place.
 * @param grad       summed gradients (read only).
 * @param m          first moments (n floats, zero before the first step).
 * @param v          second moments (n floats, zero before the first step).
 * @param grad_scale factor applied to @p grad.
 * @return PEFT_OK, PEFT_ERR_ARG on a bad argument, PEFT_ERR_NUMERIC if a result is not finite.
 */
peft_status peft_adam_step_f32(const peft_adam_params *p, int32_t n, float *param,
			       const float *grad, float *m, float *v, float grad_scale);

/**
 * @brief The dry run of peft_sgd_step_f32(): computes every new value without
 *        writing anything, so that a trainer can refuse a whole step.
 * @param p          update parameters.
 * @param n          number of elements (> 0).
 * @param param      parameters (read only).
 * @param grad       summed gradients.
 * @param velocity   momentum buffer (NULL allowed when momentum == 0).
 * @param grad_scale factor applied to @p grad.
 * @param max_abs    bound on a parameter's magnitude (an update may still move
 *                   a parameter already beyond it inward).
 * @return PEFT_OK, PEFT_ERR_ARG, PEFT_ERR_NUMERIC (a new parameter or velocity
 *         would not be finite) or PEFT_ERR_DIVERGED (a parameter would leave
 *         +-max_abs).
 */
peft_status peft_sgd_check_f32(const peft_sgd_params *p, int32_t n, const float *param,
			       const float *grad, const float *velocity, float grad_scale,
			       float max_abs);

/**
 * @brief The dry run of peft_adam_step_f32() (see peft_sgd_check_f32()).
 * @param p          update parameters (p->step >= 1: the step about to be taken).
 * @param n          number of elements (> 0).
 * @param param      parameters (read only).
 * @param grad       summed gradients.
 * @param m          first moments (read only).
 * @param v          second moments (read only).
 * @param grad_scale factor applied to @p grad.
 * @param max_abs    bound on a parameter's magnitude.
 * @return PEFT_OK, PEFT_ERR_ARG, PEFT_ERR_NUMERIC (a new parameter or moment
 *         would not be finite) or PEFT_ERR_DIVERGED.
 */
peft_status peft_adam_check_f32(const peft_adam_params *p, int32_t n, const float *param,
				const float *grad, const float *m, const float *v, float grad_scale,
				float max_abs);

/**
 * @brief Add the sum of squares of @p n floats to @p *sum (for global-norm clipping).
 * @param n   number of elements (> 0).
 * @param x   the array.
 * @param sum accumulator, read and updated.
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_sum_squares_f32(int32_t n, const float *x, float *sum);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_OPTIM_H */
