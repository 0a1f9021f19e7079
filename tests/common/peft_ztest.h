/*
 * Helpers shared by the twister suites: float comparison with a tolerance
 * that names the first mismatching element.
 */
#ifndef PEFT_ZTEST_H
#define PEFT_ZTEST_H

#include <math.h>
#include <stddef.h>

#include <zephyr/ztest.h>

/** |actual - expected| <= atol + rtol * |expected| for every element. */
#define PEFT_ASSERT_CLOSE(actual, expected, n, atol, rtol)                                         \
	do {                                                                                       \
		for (size_t i_ = 0; i_ < (size_t)(n); i_++) {                                      \
			const float a_ = (actual)[i_];                                             \
			const float e_ = (expected)[i_];                                           \
			zassert_true(fabsf(a_ - e_) <= (atol) + (rtol) * fabsf(e_),                \
				     "%s[%u]: got %d/1e6, want %d/1e6", #actual, (unsigned)i_,     \
				     (int)(a_ * 1e6f), (int)(e_ * 1e6f));                          \
		}                                                                                  \
	} while (0)

/** The call must return PEFT_OK; on failure, name the status. */
#define PEFT_ASSERT_OK(call)                                                                       \
	do {                                                                                       \
		peft_status s_ = (call);                                                           \
		zassert_equal(s_, PEFT_OK, "%s -> %s", #call, peft_status_str(s_));                \
	} while (0)

#endif /* PEFT_ZTEST_H */
