/* A library unwind_chain dlopen()s only when told to, after kscope started tracing it: its
 * unwind table can come only from the mmap record of the dlopen. Built -O2 -fomit-frame-pointer
 * like unwind_chain; every function noipa with work after its call (one frame each).
 *
 *   dl_entry -> dl_middle -> dl_leaf (spins until the deadline)
 */
#include <stdint.h>
#include <time.h>

/* gcc's noipa: no inlining, cloning or interprocedural changes. clang has no such attribute
 * (it ignored it and inlined the chain in the sanitizer build): noinline there. */
#if defined(__clang__)
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif
#define KEEP() __asm__ volatile("" ::: "memory")

static volatile uint64_t dl_sink;

static double dl_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

NOIPA static void dl_leaf(double deadline)
{
	while (dl_now() < deadline)
		for (int i = 0; i < 100000; i++)
			dl_sink += (uint64_t)i;
	KEEP();
}

NOIPA static void dl_middle(double deadline)
{
	dl_leaf(deadline);
	KEEP();
}

NOIPA void dl_entry(double deadline)
{
	dl_middle(deadline);
	KEEP();
}
