/* Minimal assertion macros for the host C tests: a failure prints where and
 * exits non-zero, so ctest reports it. */
#ifndef PEFT_TEST_H
#define PEFT_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PEFT_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define PEFT_CHECK_EQ_INT(actual, expected)                                                        \
	do {                                                                                       \
		long long a_ = (long long)(actual), e_ = (long long)(expected);                    \
		if (a_ != e_) {                                                                    \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__,  \
				#actual, a_, e_);                                                  \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define PEFT_CHECK_NEAR(actual, expected, tol)                                                     \
	do {                                                                                       \
		double a_ = (double)(actual), e_ = (double)(expected);                             \
		if (!(fabs(a_ - e_) <= (tol))) {                                                   \
			fprintf(stderr, "%s:%d: %s == %.9g, expected %.9g (tol %g)\n", __FILE__,   \
				__LINE__, #actual, a_, e_, (double)(tol));                         \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#endif /* PEFT_TEST_H */
