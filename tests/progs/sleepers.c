/* Many processes that keep waking up: `sleepers N PERIOD_MS SECONDS` forks N children, each
 * sleeping PERIOD_MS in a loop for SECONDS, then waits for them. The `kscope top` benchmark's
 * "500 processes" load (each child switches in and out PERIOD_MS apart). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: sleepers N PERIOD_MS SECONDS\n");
		return 2;
	}
	int n = atoi(argv[1]);
	long period_ms = atol(argv[2]);
	double seconds = atof(argv[3]);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			struct timespec ts = {period_ms / 1000, (period_ms % 1000) * 1000000L};
			long rounds = (long)(seconds * 1000 / (double)period_ms);
			for (long r = 0; r < rounds; r++)
				nanosleep(&ts, NULL);
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
