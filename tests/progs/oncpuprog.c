/* Ground truth for `kscope top`'s on-CPU (sampled) and off-CPU (exact) views by stack.
 *
 *   oncpuprog TRUTH_FILE ROUNDS BIG_MS SMALL_MS SLEEPS
 *
 * Four worker threads block until released by SIGUSR1 (sent once the tracer is attached):
 *   spinsleep  ROUNDS times: spin_a() for 4 ms of its own CPU time (CLOCK_THREAD_CPUTIME_ID),
 *              then sleep_b() for 2 ms
 *   big        spins in spin_big() until its own CPU clock has grown by BIG_MS
 *   small      spins in spin_small() until its own CPU clock has grown by SMALL_MS
 *   sleeper    sleeps 10 ms SLEEPS times in sleep_known()
 * Sleeps are raw nanosleep syscalls issued from the named function, and the spin loops call no
 * other code between clock reads, so with frame pointers (this program is built with them) the
 * innermost user frames are this program's functions. The clock is read every 64k iterations
 * (tens of microseconds), so time in the clock syscall is well under 1% of a spin.
 * Prints "ready PID" and waits for SIGUSR1; then releases the workers, waits until all have
 * finished and are blocked again (state S), and writes TRUTH_FILE, one line per thread:
 *   thread NAME TID cpu_ns sleep_ns sleeps sleep_cpu_ns
 * cpu_ns: the thread's CPU clock (pthread_getcpuclockid) from before the release to after it
 * blocked again, read by main: the CPU time the tracer saw. sleep_ns: the sum of the wall time
 * (CLOCK_MONOTONIC) of its sleeps, measured around each nanosleep syscall. sleeps: how many.
 * sleep_cpu_ns: its CPU clock's growth inside those windows (the syscall's own on-CPU part,
 * which a loaded VM can stretch to tens of microseconds a sleep): off-CPU time there is the
 * wall time minus this.
 * Then sleeps until killed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { SPINSLEEP, BIG, SMALL, SLEEPER, NWORKERS };

struct worker {
	const char *name;
	pid_t tid;
	clockid_t cpu_clock;
	uint64_t base_clock, cpu_ns;
	uint64_t sleep_ns, sleeps;
	uint64_t sleep_cpu_ns; /* the thread's own CPU time inside the sleeps' wall-time windows */
};

static struct worker workers[NWORKERS] = {{"spinsleep"}, {"big"}, {"small"}, {"sleeper"}};
static pid_t worker_tid(int i)
{
	return workers[i].tid;
}

#include "lib/worker_gate.h"

static uint64_t rounds, big_ms, small_ms;
static int nsleeps;

/* Raw syscalls: no libc frame (built without frame pointers) between the kernel and the caller. */
static inline __attribute__((always_inline)) uint64_t raw_clock_ns(long clock)
{
	struct timespec ts;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"((long)SYS_clock_gettime), "D"(clock), "S"(&ts)
			 : "rcx", "r11", "memory");
	(void)ret;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
#define raw_thread_cpu_ns() raw_clock_ns(CLOCK_THREAD_CPUTIME_ID)

static inline __attribute__((always_inline)) void raw_nanosleep(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"((long)SYS_nanosleep), "D"(&ts), "S"(0)
			 : "rcx", "r11", "memory");
	(void)ret;
}

#define SPIN_BODY(cpu_ns)                                                  \
	do {                                                               \
		uint64_t start = raw_thread_cpu_ns();                      \
		volatile uint64_t x = 0;                                   \
		while (raw_thread_cpu_ns() - start < (cpu_ns))             \
			for (int i = 0; i < 65536; i++)                    \
				x += (uint64_t)i;                          \
	} while (0)

static void __attribute__((noinline)) spin_a(uint64_t cpu_ns)
{
	SPIN_BODY(cpu_ns);
}

static void __attribute__((noinline)) spin_big(uint64_t cpu_ns)
{
	SPIN_BODY(cpu_ns);
}

static void __attribute__((noinline)) spin_small(uint64_t cpu_ns)
{
	SPIN_BODY(cpu_ns);
}

/* The sleeps' wall time is read with raw syscalls too: a preemption inside the vDSO's
 * clock_gettime (no frame of its own, so a frame-pointer walk skips its caller) would put that
 * off-CPU time on a stack without the sleeping function. */
static void __attribute__((noinline)) sleep_b(struct worker *w, uint64_t ns)
{
	uint64_t t0 = raw_clock_ns(CLOCK_MONOTONIC);
	uint64_t c0 = raw_thread_cpu_ns();
	raw_nanosleep(ns);
	w->sleep_cpu_ns += raw_thread_cpu_ns() - c0;
	w->sleep_ns += raw_clock_ns(CLOCK_MONOTONIC) - t0;
	w->sleeps++;
}

static void __attribute__((noinline)) sleep_known(struct worker *w, uint64_t ns)
{
	uint64_t t0 = raw_clock_ns(CLOCK_MONOTONIC);
	uint64_t c0 = raw_thread_cpu_ns();
	raw_nanosleep(ns);
	w->sleep_cpu_ns += raw_thread_cpu_ns() - c0;
	w->sleep_ns += raw_clock_ns(CLOCK_MONOTONIC) - t0;
	w->sleeps++;
}

static void work(struct worker *w)
{
	switch (w - workers) {
	case SPINSLEEP:
		for (uint64_t i = 0; i < rounds; i++) {
			spin_a(4000000ull);
			sleep_b(w, 2000000ull);
		}
		break;
	case BIG:
		spin_big(big_ms * 1000000ull);
		break;
	case SMALL:
		spin_small(small_ms * 1000000ull);
		break;
	case SLEEPER:
		for (int i = 0; i < nsleeps; i++)
			sleep_known(w, 10000000ull);
		break;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	w->tid = (pid_t)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), w->name);
	gate_arrive();
	work(w);
	gate_leave();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: oncpuprog TRUTH_FILE ROUNDS BIG_MS SMALL_MS SLEEPS\n");
		return 2;
	}
	rounds = strtoull(argv[2], NULL, 10);
	big_ms = strtoull(argv[3], NULL, 10);
	small_ms = strtoull(argv[4], NULL, 10);
	nsleeps = atoi(argv[5]);
	gate_start();
	for (int i = 0; i < NWORKERS; i++)
		workers[i].base_clock = clock_ns(workers[i].cpu_clock);
	gate_release_and_wait_done();
	wait_blocked();
	for (int i = 0; i < NWORKERS; i++)
		workers[i].cpu_ns = clock_ns(workers[i].cpu_clock) - workers[i].base_clock;

	FILE *f = fopen(argv[1], "w");
	if (!f) {
		perror("truth file");
		return 1;
	}
	for (int i = 0; i < NWORKERS; i++)
		fprintf(f, "thread %s %d %llu %llu %llu %llu\n", workers[i].name, workers[i].tid,
			(unsigned long long)workers[i].cpu_ns, (unsigned long long)workers[i].sleep_ns,
			(unsigned long long)workers[i].sleeps,
			(unsigned long long)workers[i].sleep_cpu_ns);
	fclose(f);
	printf("done\n");
	fflush(stdout);
	for (;;)
		pause();
}
