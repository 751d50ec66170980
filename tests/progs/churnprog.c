/* churnprog: process and thread churn for kscope's bounded-memory tests and `make soak`.
 *
 * Usage: churnprog procs N [PARALLEL]  prints "ready PID", waits for SIGUSR1, then runs N
 *                                      short processes (each an exec of "churnprog child"),
 *                                      PARALLEL at a time (default 2); prints "done K" after
 *                                      every 100 finished and "end N" at the end.
 *        churnprog child               spins ~0.3 ms in churn_child_work(), sleeps 1 ms in
 *                                      churn_child_sleep() (a switch-out with that user stack),
 *                                      exits.
 *        churnprog soak SECONDS        the soak workload, until SECONDS have passed (0: until
 *                                      killed): in a loop it starts short processes, starts
 *                                      threads that rename themselves, fault pages in and exit,
 *                                      dlopen()s and dlclose()s libraries, maps and unmaps
 *                                      anonymous and file-backed executable memory, and renames
 *                                      its own main thread. Prints "ready PID" once running and
 *                                      "soak processes P threads T dlopens D" at the end.
 *        churnprog stacks N [PAUSE_MS]    thread churn with distinct user stacks inside one
 *                                      living process: prints "ready PID", waits for SIGUSR1,
 *                                      then starts N threads one after the other, PAUSE_MS
 *                                      (default 10) after each one ended; thread i descends 12 levels through
 *                                      ustk_zero()/ustk_one() as the low 12 bits of i say (4096
 *                                      distinct stacks) and sleeps 1 ms in ustk_leaf(). A thread
 *                                      named "ustk-anchor" lives throughout, sleeping 20 ms at a
 *                                      time in ustk_anchor_wait(). Prints "done K" after every
 *                                      500 threads and "end N" at the end; the anchor thread is
 *                                      then stopped.
 *        churnprog kstacks MS              thread churn with many distinct kernel stacks: prints
 *                                      "ready PID", waits for SIGUSR1, then starts threads one
 *                                      after the other until SIGUSR2; each spends MS ms of CPU
 *                                      (default 50) opening, reading and closing files of
 *                                      /proc/self and stat()ing paths (kernel code, so samples
 *                                      land at ever new kernel addresses) and exits. Prints
 *                                      "done K" after every 20 threads and "end K" at the end.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char self_path[4096];

static unsigned long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

__attribute__((noinline)) static void churn_child_sleep(void)
{
	struct timespec ts = { 0, 1000000 };
	nanosleep(&ts, NULL);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void churn_child_work(void)
{
	unsigned long long end = now_ns() + 300000;
	volatile unsigned long x = 0;
	while (now_ns() < end)
		x++;
	churn_child_sleep();
	__asm__ volatile("" ::: "memory");
}

static pid_t start_child(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		execl(self_path, "churnprog", "child", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static volatile sig_atomic_t go;
static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static int run_procs(long n, int parallel)
{
	signal(SIGUSR1, on_usr1);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (!go)
		pause();
	long started = 0, finished = 0;
	int running = 0;
	while (finished < n) {
		while (running < parallel && started < n) {
			if (start_child() < 0) {
				perror("fork");
				return 1;
			}
			started++;
			running++;
		}
		int status;
		if (wait(&status) < 0) {
			perror("wait");
			return 1;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "churnprog: a child failed (status %d)\n", status);
			return 1;
		}
		running--;
		finished++;
		if (finished % 100 == 0) {
			printf("done %ld\n", finished);
			fflush(stdout);
		}
	}
	printf("end %ld\n", finished);
	fflush(stdout);
	return 0;
}

/* ---- soak ---- */

static void *soak_thread(void *arg)
{
	long i = (long)arg;
	char name[16];
	snprintf(name, sizeof(name), "soak-t%ld", i % 1000);
	prctl(PR_SET_NAME, name);
	size_t len = 64 * 4096;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED) {
		for (size_t off = 0; off < len; off += 4096)
			((volatile char *)p)[off] = 1;
		munmap(p, len);
	}
	return NULL;
}

static int run_soak(long seconds)
{
	static const char *const libs[] = { "libm.so.6", "libz.so.1", "libresolv.so.2" };
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	unsigned long long end = seconds > 0 ? now_ns() + (unsigned long long)seconds * 1000000000ull : 0;
	long procs = 0, threads = 0, dlopens = 0, round = 0;
	int fd = open(self_path, O_RDONLY);
	while (!end || now_ns() < end) {
		round++;
		char name[16];
		snprintf(name, sizeof(name), "soak-main%ld", round % 100);
		prctl(PR_SET_NAME, name);
		/* A short process, reaped. */
		pid_t pid = start_child();
		if (pid > 0) {
			waitpid(pid, NULL, 0);
			procs++;
		}
		/* Four threads that rename themselves, fault pages in and exit. */
		pthread_t t[4];
		int made = 0;
		for (int i = 0; i < 4; i++)
			if (pthread_create(&t[made], NULL, soak_thread, (void *)(round * 4 + i)) == 0)
				made++;
		for (int i = 0; i < made; i++)
			pthread_join(t[i], NULL);
		threads += made;
		/* A library mapped and unmapped (libraries already loaded only change a count). */
		void *h = dlopen(libs[round % 3], RTLD_NOW | RTLD_LOCAL);
		if (h) {
			dlclose(h);
			dlopens++;
		}
		/* Executable mappings made and removed: anonymous (a JIT's) and of a file. */
		void *x = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (x != MAP_FAILED) {
			memset(x, 0xc3, 4096);
			munmap(x, 16 * 4096);
		}
		if (fd >= 0) {
			void *f = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
			if (f != MAP_FAILED)
				munmap(f, 4096);
		}
		struct timespec ts = { 0, 5000000 };
		nanosleep(&ts, NULL);
	}
	printf("soak processes %ld threads %ld dlopens %ld\n", procs, threads, dlopens);
	fflush(stdout);
	return 0;
}

/* ---- stacks ---- */

static void ustk_step(unsigned long i, int level);

__attribute__((noinline)) static void ustk_leaf(void)
{
	struct timespec ts = { 0, 1000000 };
	nanosleep(&ts, NULL);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void ustk_zero(unsigned long i, int level)
{
	ustk_step(i, level);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void ustk_one(unsigned long i, int level)
{
	ustk_step(i, level);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void ustk_step(unsigned long i, int level)
{
	if (level == 12)
		ustk_leaf();
	else if ((i >> level) & 1)
		ustk_one(i, level + 1);
	else
		ustk_zero(i, level + 1);
	__asm__ volatile("" ::: "memory");
}

static void *ustk_thread(void *arg)
{
	ustk_step((unsigned long)arg, 0);
	return NULL;
}

static volatile int anchor_stop;

__attribute__((noinline)) static void ustk_anchor_wait(void)
{
	struct timespec ts = { 0, 20000000 };
	nanosleep(&ts, NULL);
	__asm__ volatile("" ::: "memory");
}

static void *ustk_anchor(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "ustk-anchor");
	while (!anchor_stop)
		ustk_anchor_wait();
	return NULL;
}

static int run_stacks(long n, long pause_ms)
{
	signal(SIGUSR1, on_usr1);
	pthread_t anchor;
	if (pthread_create(&anchor, NULL, ustk_anchor, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (!go)
		pause();
	for (long i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, ustk_thread, (void *)i) != 0) {
			perror("pthread_create");
			return 1;
		}
		pthread_join(t, NULL);
		struct timespec ts = { pause_ms / 1000, (pause_ms % 1000) * 1000000 };
		if (pause_ms > 0)
			nanosleep(&ts, NULL);
		if ((i + 1) % 500 == 0) {
			printf("done %ld\n", i + 1);
			fflush(stdout);
		}
	}
	printf("end %ld\n", n);
	fflush(stdout);
	anchor_stop = 1;
	pthread_join(anchor, NULL);
	return 0;
}

static volatile sig_atomic_t kstk_stop;
static void on_usr2(int sig)
{
	(void)sig;
	kstk_stop = 1;
}

static double thread_cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *kstk_thread(void *arg)
{
	static const char *const files[] = { "/proc/self/stat", "/proc/self/status",
					     "/proc/self/maps", "/proc/self/smaps_rollup",
					     "/proc/self/limits", "/proc/self/cmdline" };
	long ms = (long)arg;
	char buf[4096];
	double start = thread_cpu_ms();
	unsigned i = 0;
	while (thread_cpu_ms() - start < ms) {
		int fd = open(files[i++ % 6], O_RDONLY);
		if (fd >= 0) {
			while (read(fd, buf, sizeof(buf)) > 0)
				;
			close(fd);
		}
		struct stat st;
		stat(i & 1 ? "/usr/bin" : "/proc/self/exe", &st);
	}
	return NULL;
}

static int run_kstacks(long ms)
{
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (!go)
		pause();
	long k = 0;
	while (!kstk_stop) {
		pthread_t t;
		if (pthread_create(&t, NULL, kstk_thread, (void *)ms) != 0) {
			perror("pthread_create");
			return 1;
		}
		pthread_join(t, NULL);
		if (++k % 20 == 0) {
			printf("done %ld\n", k);
			fflush(stdout);
		}
	}
	printf("end %ld\n", k);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	if (n <= 0) {
		perror("readlink /proc/self/exe");
		return 1;
	}
	self_path[n] = '\0';
	if (argc >= 2 && strcmp(argv[1], "child") == 0) {
		churn_child_work();
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "procs") == 0)
		return run_procs(atol(argv[2]), argc >= 4 ? atoi(argv[3]) : 2);
	if (argc >= 3 && strcmp(argv[1], "soak") == 0)
		return run_soak(atol(argv[2]));
	if (argc >= 3 && strcmp(argv[1], "stacks") == 0)
		return run_stacks(atol(argv[2]), argc >= 4 ? atol(argv[3]) : 10);
	if (argc >= 2 && strcmp(argv[1], "kstacks") == 0)
		return run_kstacks(argc >= 3 ? atol(argv[2]) : 50);
	fprintf(stderr, "usage: churnprog procs N [PARALLEL] | child | soak SECONDS | stacks N [PAUSE_MS] | kstacks [MS]\n");
	return 2;
}
