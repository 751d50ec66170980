/* Ground truth for `kscope top` runtime tests: named threads with known CPU behaviour.
 *
 *   topprog TRUTH_FILE SPIN_MS SLEEPS
 *
 * Starts three worker threads that block until released:
 *   spin_full   spins until its own CLOCK_THREAD_CPUTIME_ID reaches SPIN_MS
 *   spin_third  spins SPIN_MS/3 of CPU time
 *   sleeper     sleeps 1 ms SLEEPS times (raw nanosleep syscalls from sleeper_loop())
 * Prints "ready PID" on stdout and waits for SIGUSR1 (sent once the tracer is attached).
 * Then: reads every worker's /proc/self/task/TID/schedstat and status (baseline) while they are
 * blocked, releases them, waits until they have all finished and are blocked again (state S),
 * reads the counters again, and writes TRUTH_FILE:
 *   thread NAME TID cpu_ns(schedstat delta) self_cpu_ns(thread's own clock) vol invol runs wait
 *          wall_ns
 * self_cpu_ns is the thread's own CPU clock (pthread_getcpuclockid, the clock behind its
 * CLOCK_THREAD_CPUTIME_ID) read together with the baseline and the end counters, so it covers
 * the same window as the schedstat delta and the tracer: the thread's CPU from waking up to
 * blocking again, not only its work. (Read inside the thread around the work alone, it missed
 * the CPU of waking up and of reporting "done": up to 0.25 ms for the sleeper under load.)
 * (runs: schedstat's count of times the thread was scheduled in; wait: schedstat's run-queue
 * wait in ns; wall_ns: CLOCK_MONOTONIC time from the start to the end of its work)
 * then sleeps until killed, so its threads stay idle while the tracer finishes.
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

enum { NWORKERS = 3 };

struct worker {
	const char *name;
	pid_t tid;
	clockid_t cpu_clock; /* the thread's CPU clock, readable from main */
	uint64_t base_clock, end_clock;
	uint64_t self_cpu_ns;
	uint64_t wall_ns; /* CLOCK_MONOTONIC from its first to its last running moment, about */
	uint64_t base_cpu, base_wait, base_vol, base_invol, base_runs;
	uint64_t end_cpu, end_wait, end_vol, end_invol, end_runs;
};

static struct worker workers[NWORKERS] = {{"spin_full"}, {"spin_third"}, {"sleeper"}};
static pid_t worker_tid(int i)
{
	return workers[i].tid;
}

#include "lib/worker_gate.h"

static uint64_t spin_ms;
static int sleeps;
static volatile sig_atomic_t got_signal;

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void __attribute__((noinline)) spin_until(uint64_t cpu_ns)
{
	uint64_t start = thread_cpu_ns();
	volatile uint64_t x = 0;
	while (thread_cpu_ns() - start < cpu_ns)
		for (int i = 0; i < 1000; i++)
			x += (uint64_t)i;
}

/* A raw syscall, so the innermost user frame is this program's own code (libc is built
 * without frame pointers and would hide its caller). */
static void __attribute__((noinline)) sleep_1ms(void)
{
	struct timespec ts = {0, 1000000};
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"((long)SYS_nanosleep), "D"(&ts), "S"(0)
			 : "rcx", "r11", "memory");
	(void)ret;
}

static void __attribute__((noinline)) sleeper_loop(int n)
{
	for (int i = 0; i < n; i++)
		sleep_1ms();
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	w->tid = (pid_t)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), w->name);
	gate_arrive();

	uint64_t w0 = mono_ns();
	if (strcmp(w->name, "spin_full") == 0)
		spin_until(spin_ms * 1000000ull);
	else if (strcmp(w->name, "spin_third") == 0)
		spin_until(spin_ms * 1000000ull / 3);
	else
		sleeper_loop(sleeps);
	w->wall_ns = mono_ns() - w0;

	gate_leave();
	return NULL;
}

static int read_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, size - 1, f);
	buf[n] = 0;
	fclose(f);
	return 0;
}

static uint64_t status_field(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static void read_counters(pid_t tid, uint64_t *cpu, uint64_t *wait, uint64_t *vol, uint64_t *invol,
			  uint64_t *runs)
{
	char path[128], buf[4096];
	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", tid);
	*cpu = *wait = *runs = 0;
	if (read_file(path, buf, sizeof(buf)) == 0) {
		/* on-CPU ns, run-queue wait ns, number of times scheduled in */
		char *p = buf;
		*cpu = strtoull(p, &p, 10);
		*wait = strtoull(p, &p, 10);
		*runs = strtoull(p, &p, 10);
	}
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	if (read_file(path, buf, sizeof(buf)) != 0)
		buf[0] = 0;
	*vol = status_field(buf, "voluntary_ctxt_switches:");
	*invol = status_field(buf, "nonvoluntary_ctxt_switches:");
}

static void on_signal(int sig)
{
	(void)sig;
	got_signal = 1;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: topprog TRUTH_FILE SPIN_MS SLEEPS\n");
		return 2;
	}
	spin_ms = strtoull(argv[2], NULL, 10);
	sleeps = atoi(argv[3]);
	gate_start();

	for (int i = 0; i < NWORKERS; i++) {
		read_counters(workers[i].tid, &workers[i].base_cpu, &workers[i].base_wait,
			      &workers[i].base_vol,
			      &workers[i].base_invol, &workers[i].base_runs);
		workers[i].base_clock = clock_ns(workers[i].cpu_clock);
	}
	gate_release_and_wait_done();
	wait_blocked();
	for (int i = 0; i < NWORKERS; i++) {
		read_counters(workers[i].tid, &workers[i].end_cpu, &workers[i].end_wait,
			      &workers[i].end_vol,
			      &workers[i].end_invol, &workers[i].end_runs);
		workers[i].end_clock = clock_ns(workers[i].cpu_clock);
		workers[i].self_cpu_ns = workers[i].end_clock - workers[i].base_clock;
	}

	FILE *f = fopen(argv[1], "w");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	for (int i = 0; i < NWORKERS; i++) {
		struct worker *w = &workers[i];
		fprintf(f, "thread %s %d %llu %llu %llu %llu %llu %llu %llu\n", w->name, w->tid,
			(unsigned long long)(w->end_cpu - w->base_cpu),
			(unsigned long long)w->self_cpu_ns,
			(unsigned long long)(w->end_vol - w->base_vol),
			(unsigned long long)(w->end_invol - w->base_invol),
			(unsigned long long)(w->end_runs - w->base_runs),
			(unsigned long long)(w->end_wait - w->base_wait),
			(unsigned long long)w->wall_ns);
	}
	fclose(f);
	printf("done\n");
	fflush(stdout);
	signal(SIGTERM, on_signal);
	while (!got_signal)
		pause();
	return 0;
}
