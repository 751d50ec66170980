/* Many processes that keep waking up: `sleepers N PERIOD_MS SECONDS [SPIN_US]` forks N children,
 * each sleeping PERIOD_MS in a loop for SECONDS, then waits for them. The `kscope top`
 * benchmark's "500 processes" load (each child switches in and out PERIOD_MS apart). With
 * SPIN_US, each round first spins until the child's own CPU clock has grown by SPIN_US (in
 * spin(), a function of its own): N processes that need N * SPIN_US / (PERIOD_MS * 1000 +
 * SPIN_US) CPUs, a busy machine that is not a fork storm (bench/symbols_top_first_screen.sh). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

__attribute__((noinline)) static void spin(long spin_us)
{
	long long until = thread_cpu_ns() + spin_us * 1000LL;
	while (thread_cpu_ns() < until) {
	}
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: sleepers N PERIOD_MS SECONDS [SPIN_US]\n");
		return 2;
	}
	long spin_us = argc == 5 ? atol(argv[4]) : 0;
	int n = atoi(argv[1]);
	long period_ms = atol(argv[2]);
	double seconds = atof(argv[3]);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			struct timespec ts = {period_ms / 1000, (period_ms % 1000) * 1000000L};
			long rounds = (long)(seconds * 1000 / (double)period_ms);
			for (long r = 0; r < rounds; r++) {
				if (spin_us > 0)
					spin(spin_us);
				nanosleep(&ts, NULL);
			}
			_exit(0);
		}
		if (pid < 0) {
			perror("fork");
			break;
		}
	}
	while (wait(NULL) > 0) {
	}
	return 0;
}
