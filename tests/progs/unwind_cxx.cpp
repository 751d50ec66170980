// Ground truth for the native unwinder in C++ with inlined frames, built -O2
// -fomit-frame-pointer -g (CMakeLists.txt): the spinning code is inlined twice into a real frame.
//
//   unwind_cxx SECONDS   main -> Outer::run (noipa) -> [inlined: Mid::step -> Leaf::spin]
//
// The user stack has the real frames Outer::run, main, libc's start; kscope names the inlined
// functions from DWARF at Outer::run's PC (innermost first), sharing its address.
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

// gcc's noipa; clang has no such attribute (it would ignore it): noinline there.
#if defined(__clang__)
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif

namespace {

volatile uint64_t sink;
double deadline_s;

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Leaf {
  __attribute__((always_inline)) static inline void spin(uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) sink = sink + i;
  }
};

struct Mid {
  __attribute__((always_inline)) static inline void step(uint64_t n) {
    Leaf::spin(n);
    sink = sink + 1;
  }
};

struct Outer {
  NOIPA static void run() {
    while (now_s() < deadline_s) Mid::step(2000000);
    __asm__ volatile("" ::: "memory");
  }
};

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 10;
  deadline_s = now_s() + seconds;
  printf("ready %d\n", static_cast<int>(getpid()));
  fflush(stdout);
  Outer::run();
  __asm__ volatile("" ::: "memory");
  return 0;
}
