// Where one walk of the native unwinder spends its time (docs/PERFORMANCE.md, "Where a walk's
// time goes"). Root only.
//
//   unwind_parts [--depth D] [--rounds N] [--reps R] [--single N]
//
// Loads bpf/unwind_bench.bpf.c, writes this process's own unwind tables into its maps with
// kscope's TableLoader (as kscope top does), then descends a call chain of D distinct functions
// of its own, calls libc's qsort() and, from inside the comparison callback (so libc's sort
// frames sit between two parts of this program), runs the BPF program with BPF_PROG_TEST_RUN:
// it walks this very stack from the registers of the bpf() system call. The walk must be
// complete and must agree with glibc's backtrace() (libgcc's .eh_frame unwinder, independent of
// kscope) on every frame backtrace() reports; otherwise nothing is measured.
//
// Each round runs every part R times in BPF between two clock reads (ns per repetition: the
// clock's own cost is spread over R), the parts interleaved so load hits them alike; a part's
// figure is the median over the rounds. Then --single walks each timed alone (one test run each,
// the clock read's cost subtracted): no repetition warms caches for the next one, closer to a
// walk at a context switch.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <execinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "symbols/proc_maps.h"
#include "trace/bpf_unwind_maps.h"
#include "unwind/table_loader.h"
#include "unwind_bench.skel.h"

namespace {

enum Mode : uint32_t {
  kClock,
  kWalk,
  kProcs,
  kMaps,
  kRows,
  kReads,
  kRead16,
  kLoop,
  kStore,
  kPrepare
};
struct Part {
  Mode mode;
  const char* name;
  bool per_frame;  // the part runs once per frame of the walk
};
constexpr Part kParts[] = {
    {kClock, "clock (one bpf_ktime_get_ns)", false},
    {kWalk, "whole walk (kscope_unwind_walk)", false},
    {kProcs, "unwind_procs lookup", true},
    {kMaps, "mapping binary search", true},
    {kRows, "files lookup + row binary search", true},
    {kReads, "two 8-byte bpf_probe_read_user", true},
    {kRead16, "one 16-byte bpf_probe_read_user", true},
    {kLoop, "bpf_loop iteration (empty)", true},
    {kStore, "ustacks lookup (end of walk)", false},
};

struct Options {
  int depth = 6;
  int rounds = 31;
  uint32_t reps = 200;
  int single = 2000;
};

Options g_opt;
unwind_bench_bpf* g_skel = nullptr;
int g_status = 1;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "unwind_parts: %s\n", what.c_str());
  std::exit(1);
}

// One test run of `mode`, R repetitions; returns bench_ns.
uint64_t run(Mode mode, uint32_t reps) {
  g_skel->bss->bench_mode = mode;
  g_skel->bss->bench_reps = reps;
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  int err = bpf_prog_test_run_opts(bpf_program__fd(g_skel->progs.unwind_bench), &opts);
  if (err || (mode == kPrepare && opts.retval != 0))
    die("BPF_PROG_TEST_RUN failed (" + std::to_string(err) + ", retval " +
        std::to_string(static_cast<int>(opts.retval)) + ")");
  return g_skel->bss->bench_ns;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

// The walk of this stack, checked against backtrace() taken in the same function.
__attribute__((noinline)) void check_walk() {
  void* bt[128];
  int n = backtrace(bt, 128);
  run(kWalk, 1);
  run(kPrepare, 1);
  const auto& b = *g_skel->bss;
  uint32_t len = b.bench_len;
  if (b.bench_id < 0) die("the walk was not stored (id " + std::to_string(b.bench_id) + ")");
  if (b.bench_reason != KSCOPE_UNWIND_COMPLETE)
    die("the walk is incomplete (reason " + std::to_string(b.bench_reason) + ", " +
        std::to_string(len) + " frames)");
  // backtrace()[0] is inside check_walk; [1..n) are return addresses, as are the walk's after
  // its first frames (the system call, libbpf, run(), this function's call of run()): the
  // walk must end with exactly backtrace()'s frames 1..n.
  if (n < 2 || static_cast<uint32_t>(n - 1) > len) die("backtrace() found too few frames");
  for (int i = 1; i < n; ++i) {
    uint64_t want = reinterpret_cast<uint64_t>(bt[i]);
    uint64_t got = b.bench_ips[len - static_cast<uint32_t>(n - i)];
    if (want != got) {
      char buf[160];
      std::snprintf(buf, sizeof(buf), "frame %d from the end differs: walk %#lx, backtrace %#lx",
                    n - i, static_cast<unsigned long>(got), static_cast<unsigned long>(want));
      die(buf);
    }
  }
  std::printf("stack: %u frames, complete, the last %d equal to backtrace()'s; %u with a row\n",
              len, n - 1, b.bench_frames_with_row);
}

__attribute__((noinline)) void measure() {
  check_walk();
  uint32_t len = g_skel->bss->bench_len;
  std::vector<std::vector<double>> per_rep(std::size(kParts));
  for (int r = 0; r < g_opt.rounds; ++r) {
    for (size_t p = 0; p < std::size(kParts); ++p) {
      uint64_t ns = run(kParts[p].mode, g_opt.reps);
      per_rep[p].push_back(static_cast<double>(ns) / g_opt.reps);
    }
  }
  double clock_ns = median(per_rep[0]);
  // Per-frame parts ran over all the walk's frames per repetition: ns/walk is that total.
  std::printf("%-36s %10s %10s\n", "part (medians over rounds)", "ns/walk", "ns/frame");
  for (size_t p = 0; p < std::size(kParts); ++p) {
    double m = median(per_rep[p]);
    if (kParts[p].per_frame || kParts[p].mode == kWalk)
      std::printf("%-36s %10.1f %10.1f\n", kParts[p].name, m, m / len);
    else
      std::printf("%-36s %10.1f %10s\n", kParts[p].name, m, "");
  }
  // One walk per test run: the two clock reads around it add one clock read's duration.
  std::vector<double> single;
  for (int i = 0; i < g_opt.single; ++i)
    single.push_back(static_cast<double>(run(kWalk, 1)) - clock_ns);
  if (!single.empty())
    std::printf("single walks: %d, median %.0f ns, p90 %.0f ns (%u frames)\n", g_opt.single,
                median(single), quantile(single, 0.9), len);
  g_status = 0;
}

int compare(const void* a, const void* b) {
  static bool done = false;
  if (!done) {
    done = true;
    measure();
  }
  int x = *static_cast<const int*>(a), y = *static_cast<const int*>(b);
  return (x > y) - (x < y);
}

__attribute__((noinline)) void sort_leaf() {
  int v[2] = {2, 1};
  qsort(v, 2, sizeof(int), compare);
  asm volatile("" ::"r"(v) : "memory");
}

// D distinct functions (not one recursive function: each frame has its own rows).
template <int K>
__attribute__((noinline)) void chain(int depth) {
  if constexpr (K < 40) {
    if (K < depth) {
      chain<K + 1>(depth);
      asm volatile("");  // no tail call: each level stays on the stack
      return;
    }
  }
  sort_leaf();
  asm volatile("");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> long {
      if (i + 1 >= argc) die("missing value after " + a);
      return std::strtol(argv[++i], nullptr, 10);
    };
    if (a == "--depth")
      g_opt.depth = static_cast<int>(std::clamp(next(), 0l, 40l));
    else if (a == "--rounds")
      g_opt.rounds = static_cast<int>(std::clamp(next(), 1l, 100000l));
    else if (a == "--reps")
      g_opt.reps = static_cast<uint32_t>(std::clamp(next(), 1l, 1l << 20));
    else if (a == "--single")
      g_opt.single = static_cast<int>(std::clamp(next(), 0l, 1000000l));
    else
      die("usage: unwind_parts [--depth D] [--rounds N] [--reps R] [--single N]");
  }
  if (geteuid() != 0) die("needs root (BPF)");

  g_skel = unwind_bench_bpf__open();
  if (!g_skel) die("opening the BPF object failed");
  constexpr uint32_t kRows = 1u << 20, kFiles = 256, kProcs = 4;
  bpf_map__set_max_entries(g_skel->maps.unwind_rows, kRows);
  bpf_map__set_max_entries(g_skel->maps.unwind_files, kFiles);
  bpf_map__set_max_entries(g_skel->maps.unwind_procs, kProcs);
  bpf_map__set_max_entries(g_skel->maps.ustacks, 64);
  if (auto st = kscope::configure_unwind_early(g_skel->obj, false, kFiles, 1); !st)
    die(st.error().message);
  if (int err = unwind_bench_bpf__load(g_skel))
    die("loading the BPF object failed: " + std::string(std::strerror(-err)));

  kscope::BpfUnwindMaps writer(bpf_map__fd(g_skel->maps.unwind_rows),
                               bpf_map__fd(g_skel->maps.unwind_files),
                               bpf_map__fd(g_skel->maps.unwind_procs));
  kscope::unwind::TableLoader loader(writer, kRows, kFiles);
  auto maps = kscope::read_proc_maps(static_cast<uint32_t>(getpid()));
  if (!maps) die(maps.error().message);
  std::vector<kscope::unwind::ExecMapping> exec;
  for (const auto& m : *maps)
    if (m.executable())
      exec.push_back({m.start, m.end, m.offset, m.inode, m.dev_major, m.dev_minor, m.path});
  if (auto st = loader.load_process(static_cast<uint32_t>(getpid()), exec); !st)
    die(st.error().message);
  std::printf("tables: %zu files, %zu rows\n", loader.stats().files, loader.stats().rows);

  chain<0>(g_opt.depth);
  unwind_bench_bpf__destroy(g_skel);
  return g_status;
}
