// Ground truth for the symbolizer tests (tests/unit/symbolizer_test.cpp): functions with known
// names, whose runtime addresses the program prints, followed by its own /proc/self/maps, so a
// test can resolve those addresses after the process has exited.
//
// Output, one "key value" per line, then the maps text:
//   func <name> <hex address>
//   pc <name> <hex address>      a return address inside inlined functions
//   line <name> <source line>
//   maps
//   <contents of /proc/self/maps>
#include <stdio.h>

static void* volatile sym_target_seen_return;
static volatile int sym_target_sink;

__attribute__((noinline)) int sym_target_alpha(int x) {
  sym_target_sink += x;
  return sym_target_sink * 7 + 1;
}

__attribute__((noinline)) int sym_target_beta(int x) {
  for (int i = 0; i < x; ++i) sym_target_sink += i;
  return sym_target_sink;
}

// Records its return address: an address inside whatever called it.
__attribute__((noinline)) void sym_target_record_caller(void) {
  sym_target_seen_return = __builtin_return_address(0);
  __asm__ volatile("" ::: "memory");
}

// Two levels of inlining: sym_target_outer <- sym_target_inner <- sym_target_innermost. The
// enums record the source line of each call, for the inline-chain assertions.
enum { kInnermostCallLine = __LINE__ + 3 };
static inline __attribute__((always_inline)) int sym_target_innermost(int x) {
  sym_target_sink += x;
  sym_target_record_caller();
  return sym_target_sink * 3;
}

enum { kInnerCallLine = __LINE__ + 3 };
static inline __attribute__((always_inline)) int sym_target_inner(int x) {
  sym_target_sink -= 1;
  return sym_target_innermost(x) * 5;
}

enum { kOuterCallLine = __LINE__ + 2 };
__attribute__((noinline)) int sym_target_outer(int x) {
  return sym_target_inner(x) + 1;
}

static void print_maps(void) {
  FILE* maps = fopen("/proc/self/maps", "r");
  if (!maps) return;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, maps)) > 0) fwrite(buf, 1, n, stdout);
  fclose(maps);
}

int main(void) {
  sym_target_alpha(1);
  sym_target_beta(3);
  sym_target_outer(2);
  printf("func sym_target_alpha %p\n", (void*)&sym_target_alpha);
  printf("func sym_target_beta %p\n", (void*)&sym_target_beta);
  printf("func sym_target_outer %p\n", (void*)&sym_target_outer);
  printf("func main %p\n", (void*)&main);
  printf("pc sym_target_record_call %p\n", sym_target_seen_return);
  printf("line sym_target_innermost_call %d\n", (int)kInnermostCallLine);
  printf("line sym_target_inner_call %d\n", (int)kInnerCallLine);
  printf("line sym_target_outer_call %d\n", (int)kOuterCallLine);
  printf("maps\n");
  fflush(stdout);
  print_maps();
  return 0;
}
