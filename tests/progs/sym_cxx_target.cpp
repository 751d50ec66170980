// Ground truth for the symbolizer's C++ demangling (tests/unit/symbolizer_test.cpp): a function
// in nested namespaces, a template instance and a const member function. Same output format as
// sym_target.c: "func <name> <address>" / "pc <name> <address>" lines, "maps", then the maps.
#include <cstdio>

namespace kscope_symtest {

static void* volatile seen_return;
static volatile long sink;

__attribute__((noinline)) void record_caller() {
  seen_return = __builtin_return_address(0);
  __asm__ volatile("" ::: "memory");
}

namespace inner {
__attribute__((noinline)) int sym_namespaced(int x) {
  sink = sink + x;
  return static_cast<int>(sink) * 5;
}
}  // namespace inner

template <typename T>
__attribute__((noinline)) T sym_scale(T value, int factor) {
  sink = sink + factor;
  return value * static_cast<T>(factor) + static_cast<T>(sink);
}

struct Shape {
  double side = 2.0;
  __attribute__((noinline)) double area(double scale) const {
    record_caller();
    return side * side * scale;
  }
};

}  // namespace kscope_symtest

int main() {
  using namespace kscope_symtest;
  inner::sym_namespaced(1);
  sym_scale<long>(3, 4);
  Shape shape;
  shape.area(1.5);
  void* area_return = seen_return;
  std::printf("func namespaced %p\n", reinterpret_cast<void*>(&inner::sym_namespaced));
  std::printf("func scale_long %p\n", reinterpret_cast<void*>(&sym_scale<long>));
  std::printf("pc area %p\n", area_return);
  std::printf("maps\n");
  std::fflush(stdout);
  if (FILE* maps = std::fopen("/proc/self/maps", "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, maps)) > 0) std::fwrite(buf, 1, n, stdout);
    std::fclose(maps);
  }
  return 0;
}
