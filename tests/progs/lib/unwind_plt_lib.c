/* The shared library tests/progs/unwind_plt calls through lazily bound PLT entries.
 *
 * plt_ifunc_0 ... plt_ifunc_15 are IFUNCs: the first call of each from unwind_plt (linked
 * -z lazy) enters ld.so's _dl_runtime_resolve_xsave*, whose _dl_fixup runs the resolver; the
 * resolver's helper writes to page K of the buffer plt_lib_setup() gave, so each first call takes
 * one page fault whose stack runs resolver_touch <- resolve_K <- _dl_fixup <-
 * _dl_runtime_resolve_xsave* <- the caller in unwind_plt. plt_leaf_target and plt_leaf_target2 are
 * ordinary functions for the tests whose faults are taken in the PLT stub and in the resolver. Built -O2 -fomit-frame-pointer. */
#include <stddef.h>

/* gcc's noipa: no inlining, cloning or interprocedural changes. clang has no such attribute
 * (it ignored it and inlined the chain in the sanitizer build): noinline there. */
#if defined(__clang__)
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif
#define KEEP() __asm__ volatile("" ::: "memory")

typedef int plt_fn_t(int);

static char *volatile pages_base;

void plt_lib_setup(char *base)
{
	pages_base = base;
}

int plt_leaf_target(int x)
{
	return x * 3;
}

int plt_leaf_target2(int x)
{
	return x * 5;
}

NOIPA static void resolver_touch(int k)
{
	pages_base[(size_t)k * 4096] = 1;
	KEEP();
}

NOIPA static int plt_impl(int x)
{
	return x + 1;
}

#define PLT_IFUNC(k)                                                                               \
	NOIPA static plt_fn_t *resolve_##k(void)                                                   \
	{                                                                                          \
		resolver_touch(k);                                                                 \
		KEEP();                                                                            \
		return plt_impl;                                                                   \
	}                                                                                          \
	int plt_ifunc_##k(int) __attribute__((ifunc("resolve_" #k)));

PLT_IFUNC(0)
PLT_IFUNC(1)
PLT_IFUNC(2)
PLT_IFUNC(3)
PLT_IFUNC(4)
PLT_IFUNC(5)
PLT_IFUNC(6)
PLT_IFUNC(7)
PLT_IFUNC(8)
PLT_IFUNC(9)
PLT_IFUNC(10)
PLT_IFUNC(11)
PLT_IFUNC(12)
PLT_IFUNC(13)
PLT_IFUNC(14)
PLT_IFUNC(15)
