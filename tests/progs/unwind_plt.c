/* Ground truth for stacks taken during lazy binding: the first call of a function through the
 * PLT, in a program built -O2 -fomit-frame-pointer and linked -z lazy against
 * tests/progs/lib/unwind_plt_lib.c (CMakeLists.txt).
 *
 *   unwind_plt ifunc [go]    main -> run_ifunc -> call_plt(k) -> [PLT] -> ld.so's
 *                            _dl_runtime_resolve_xsave* -> _dl_fixup -> resolve_k ->
 *                            resolver_touch: the IFUNC resolver of each of the library's 16
 *                            IFUNCs writes to page k of a fresh mapping (16 faults, one each)
 *   unwind_plt pltleaf [go]  main -> run_pltleaf -> plt_trampoline -> [PLT stub of
 *                            plt_leaf_target]: the stub's `push $index` (the lazy path) is the
 *                            first write to a fresh page, so that fault's leaf is the stub; then
 *                            main -> run_pltleaf -> resolve_trampoline -> [PLT] ->
 *                            _dl_runtime_resolve_xsave*: its register save area is the first
 *                            write to a fresh page, after it defined CFA = rbx + N
 *
 * ifunc prints "buffer START END" (the pages the resolvers touch); pltleaf prints "pltleaf START
 * END STUB RET" (the fresh pages of the first stack, the stub's address, the trampoline's return
 * address) and "resolve START END RET" (the second stack's, where the resolver faults); then
 * "ready PID", and waits for SIGUSR1 unless "go". Prints "done" at the end. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* gcc's noipa: no inlining, cloning or interprocedural changes. clang has no such attribute
 * (it ignored it and inlined the chain in the sanitizer build): noinline there. */
#if defined(__clang__)
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif
#define KEEP() __asm__ volatile("" ::: "memory")

void plt_lib_setup(char *base);
int plt_leaf_target(int x);
int plt_leaf_target2(int x);
#define DECL(k) int plt_ifunc_##k(int);
DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5) DECL(6) DECL(7)
DECL(8) DECL(9) DECL(10) DECL(11) DECL(12) DECL(13) DECL(14) DECL(15)
#define KIFUNCS 16

/* plt_trampoline(new_sp): saves rsp in rbp (CFA = rbp + 16: a frame any unwinder follows), sets
 * rsp = new_sp and calls plt_leaf_target through its PLT entry; resolve_trampoline the same for
 * plt_leaf_target2. With new_sp = B + 8 for a page boundary B the call stores its return address
 * at [B, B+8) (a page already present) and the stub's push writes [B-8, B) (a fresh page): the
 * fault's leaf is the stub. With new_sp = B + 40 the pushes of the stub, of the PLT's first entry
 * and of _dl_runtime_resolve_xsave*'s rbx all land above B, and the first write to a fresh page is
 * the resolver's register save area, after it set CFA = rbx + N. rsp is not 16-aligned at these
 * calls; only the stub, ld.so's resolver (which realigns) and the trivial targets run there. */
int plt_trampoline(uint64_t new_sp);
int resolve_trampoline(uint64_t new_sp);
extern char plt_trampoline_call[], plt_trampoline_ret[], resolve_trampoline_ret[];
#define TRAMPOLINE(name, target)                                                                   \
	".text\n"                                                                                  \
	".globl " name "\n"                                                                        \
	".type " name ", @function\n" name ":\n"                                                   \
	".cfi_startproc\n"                                                                         \
	"	push %rbp\n"                                                                       \
	".cfi_def_cfa_offset 16\n"                                                                 \
	".cfi_offset %rbp, -16\n"                                                                  \
	"	mov %rsp, %rbp\n"                                                                  \
	".cfi_def_cfa_register %rbp\n"                                                             \
	"	mov %rdi, %rsp\n"                                                                  \
	"	mov $7, %edi\n"                                                                    \
	".globl " name "_call\n" name "_call:\n"                                                   \
	"	call " target "@PLT\n"                                                             \
	".globl " name "_ret\n" name "_ret:\n"                                                     \
	"	mov %rbp, %rsp\n"                                                                  \
	"	pop %rbp\n"                                                                        \
	".cfi_def_cfa %rsp, 8\n"                                                                   \
	"	ret\n"                                                                             \
	".cfi_endproc\n"                                                                           \
	".size " name ", .-" name "\n"
__asm__(TRAMPOLINE("plt_trampoline", "plt_leaf_target"));
__asm__(TRAMPOLINE("resolve_trampoline", "plt_leaf_target2"));

static volatile int sink;

NOIPA static int call_plt(int k)
{
	int r;
	switch (k) {
#define CASE(n)                                                                                    \
	case n:                                                                                    \
		r = plt_ifunc_##n(k);                                                              \
		break;
		CASE(0) CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7)
		CASE(8) CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14) CASE(15)
	default:
		r = 0;
	}
	KEEP();
	return r + 1;
}

NOIPA static void run_ifunc(void)
{
	for (int k = 0; k < KIFUNCS; k++)
		sink += call_plt(k);
	KEEP();
}

NOIPA static void run_pltleaf(uint64_t leaf_sp, uint64_t resolve_sp)
{
	sink += plt_trampoline(leaf_sp);
	sink += resolve_trampoline(resolve_sp);
	KEEP();
}

static char *map_pages(size_t n)
{
	char *p = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "ifunc") && strcmp(argv[1], "pltleaf"))) {
		fprintf(stderr, "usage: unwind_plt ifunc|pltleaf [go]\n");
		return 2;
	}
	int go = argc > 2 && strcmp(argv[2], "go") == 0;
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL); /* pending until sigwait: no race with the tracer */
	int ifunc = strcmp(argv[1], "ifunc") == 0;
	char *buf;
	uint64_t leaf_sp = 0, resolve_sp = 0;
	if (ifunc) {
		buf = map_pages(KIFUNCS);
		plt_lib_setup(buf);
		printf("buffer %lx %lx\n", (unsigned long)buf, (unsigned long)(buf + KIFUNCS * 4096));
	} else {
		/* Two stacks: 16 fresh pages below a boundary (ld.so's resolver needs a few KiB),
		 * 2 present ones above it. */
		enum { kFresh = 16, kPresent = 2, kStack = kFresh + kPresent };
		buf = map_pages(2 * kStack);
		for (int i = 0; i < 2; i++)
			memset(buf + (i * kStack + kFresh) * 4096, 0, kPresent * 4096);
		char *b1 = buf + kFresh * 4096, *b2 = buf + (kStack + kFresh) * 4096;
		leaf_sp = (uint64_t)b1 + 8;
		resolve_sp = (uint64_t)b2 + 40;
		/* The stub: the call's target (e8 rel32). */
		int32_t rel;
		memcpy(&rel, plt_trampoline_call + 1, 4);
		printf("pltleaf %lx %lx %lx %lx\n", (unsigned long)(b1 - kFresh * 4096),
		       (unsigned long)b1, (unsigned long)(plt_trampoline_ret + rel),
		       (unsigned long)plt_trampoline_ret);
		printf("resolve %lx %lx %lx\n", (unsigned long)(b2 - kFresh * 4096), (unsigned long)b2,
		       (unsigned long)resolve_trampoline_ret);
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	int sig;
	if (!go)
		sigwait(&usr1, &sig);
	if (ifunc)
		run_ifunc();
	else
		run_pltleaf(leaf_sp, resolve_sp);
	printf("done %d\n", sink);
	fflush(stdout);
	return 0;
}
