/* Ground truth for `kscope monitor`'s CPU time: threads that use a known share of the CPU, and
 * the process's own account of what it used.
 *
 *   cpuprog DURATION_MS DUTY_PERCENT THREADS
 *
 * Starts THREADS threads; thread i (0-based) runs for DURATION_MS * (i + 1) / THREADS of wall
 * time, so all but the last exit before the process does (their CPU time must still count). Each
 * works on a 1 ms grid: it spins until its own CLOCK_THREAD_CPUTIME_ID has grown by
 * DUTY_PERCENT % of 1 ms, then sleeps to the next grid point (when it is behind, it does not
 * sleep). The main thread joins them, then reads, in this order and without allocating:
 *   its own CLOCK_PROCESS_CPUTIME_ID (the kernel's sum_exec_runtime of all its threads, the
 *   running one brought up to date), and VmRSS from /proc/self/status,
 * and prints on stdout:
 *   cpuprog: pid=PID cpu_ns=N rss_kb=N
 * then exits at once.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t duration_ms;
static uint64_t duty_percent;
static int nthreads;

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *worker(void *arg)
{
	long index = (long)arg;
	uint64_t start = clock_ns(CLOCK_MONOTONIC);
	uint64_t end = start + duration_ms * 1000000ull * (uint64_t)(index + 1) / (uint64_t)nthreads;
	uint64_t spin_ns = duty_percent * 10000ull; /* DUTY % of 1 ms */
	uint64_t next = start;
	while (clock_ns(CLOCK_MONOTONIC) < end) {
		uint64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		while (clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0 < spin_ns) {
		}
		next += 1000000ull;
		uint64_t now = clock_ns(CLOCK_MONOTONIC);
		if (next > now) {
			struct timespec ts = {(time_t)(next / 1000000000ull),
					      (long)(next % 1000000000ull)};
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
			}
		} else {
			next = now;
		}
	}
	return NULL;
}

static uint64_t vm_rss_kb(void)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strstr(buf, "\nVmRSS:");
	return p ? strtoull(p + 7, NULL, 10) : 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: cpuprog DURATION_MS DUTY_PERCENT THREADS\n");
		return 2;
	}
	duration_ms = strtoull(argv[1], NULL, 10);
	duty_percent = strtoull(argv[2], NULL, 10);
	nthreads = atoi(argv[3]);
	if (duration_ms == 0 || duty_percent == 0 || duty_percent > 100 || nthreads < 1 ||
	    nthreads > 64) {
		fprintf(stderr, "cpuprog: bad arguments\n");
		return 2;
	}
	/* Run the end's code once now, so that its pages (and the fault-around pages near them) are
	 * resident before the work starts: the RSS at the end is then the RSS during the work. */
	char warm[128];
	snprintf(warm, sizeof(warm), "%llu %llu", (unsigned long long)vm_rss_kb(),
		 (unsigned long long)clock_ns(CLOCK_PROCESS_CPUTIME_ID));
	pthread_t threads[64];
	for (long i = 0; i < nthreads; ++i)
		if (pthread_create(&threads[i], NULL, worker, (void *)i) != 0) {
			fprintf(stderr, "cpuprog: pthread_create failed\n");
			return 1;
		}
	for (int i = 0; i < nthreads; ++i)
		pthread_join(threads[i], NULL);
	uint64_t cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	uint64_t rss = vm_rss_kb();
	char line[128];
	int len = snprintf(line, sizeof(line), "cpuprog: pid=%d cpu_ns=%llu rss_kb=%llu\n",
			   (int)getpid(), (unsigned long long)cpu, (unsigned long long)rss);
	if (write(1, line, (size_t)len) != len)
		return 1;
	return 0;
}
