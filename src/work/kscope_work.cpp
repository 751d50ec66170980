// kscope-work: the workload generator of the kscope monitor case studies. Allocates N MiB, then
// each iteration makes a given number of one-byte write accesses:
//   random      uniform over the whole region
//   locality    with probability 0.9 inside a window of 256 pages (1 MiB), else uniform over
//               the region; the window starts at page 0 and moves forward by one page every 16
//               accesses, wrapping at the end of the region
//   sequential  consecutive accesses 64 bytes apart, continuing across iterations, wrapping
// Each access writes one byte (a read first would map the zero page and fault twice per page).
// Offsets inside a page are uniform. The generator is seeded (--seed), so runs are repeatable.
// --register registers the process with a running kscope monitor and unregisters on exit.
// At the end it prints its elapsed time and its own fault counts and CPU time (getrusage), and
// the faults of the access phase alone (the loader's and libraries' faults excluded: a library
// page read back from disk after another process evicted it is a major fault of the process, not
// of its accesses).
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>

#include "monitor/protocol.h"
#include "util/clock.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

// splitmix64: small, fast, good enough for uniform page choices.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
};

constexpr uint64_t kPage = 4096;
constexpr uint64_t kWindowPages = 256;
constexpr uint64_t kWindowStepEvery = 16;
constexpr uint64_t kLocalityPercent = 90;
constexpr uint64_t kSequentialStride = 64;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "kscope-work: allocate N MiB and access it with a known pattern (the workload of the "
      "kscope monitor case studies). Prints elapsed time and its own fault counts at the end.",
      "kscope-work"};
  uint64_t mb = 0, accesses = 0, iterations = 20, seed = 1;
  std::string pattern;
  bool do_register = false;
  uint64_t hold_ms = 0;
  int start_fd = -1;
  std::string socket;
  app.add_option("--mb", mb, "MiB to allocate (1..1048576)")->required();
  app.add_option("--pattern", pattern, "random | locality | sequential")
      ->required()
      ->check(CLI::IsMember({"random", "locality", "sequential"}));
  app.add_option("--accesses", accesses, "Accesses per iteration (1..1e10)")->required();
  app.add_option("--iterations", iterations, "Iterations (default 20)");
  app.add_option("--seed", seed, "Seed of the pseudo-random choices (default 1)");
  app.add_option("--hold-ms", hold_ms,
                 "After the last access, keep the memory and sleep this long before reporting");
  app.add_option("--start-fd", start_fd,
                 "Wait until file descriptor FD (an inherited pipe) reaches end-of-file before "
                 "allocating: lets a driver start many processes at the same moment");
  app.add_flag("--register", do_register,
               "Register with a running kscope monitor at start, unregister at exit");
  app.add_option("--socket", socket, "The monitor's control socket (default as kscope monitor)");
  app.footer(
      "Locality model: 90% of accesses fall in a 256-page (1 MiB) window, 10% anywhere; the "
      "window moves forward one page every 16 accesses. Sequential: 64-byte steps.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "kscope-work: %s\n", e.what());
    return 2;
  }
  if (mb < 1 || mb > 1048576) {
    std::fprintf(stderr, "kscope-work: --mb must be between 1 and 1048576\n");
    return 2;
  }
  if (accesses < 1 || accesses > 10'000'000'000ull) {
    std::fprintf(stderr, "kscope-work: --accesses must be between 1 and 10000000000\n");
    return 2;
  }
  if (iterations < 1 || iterations > 1'000'000) {
    std::fprintf(stderr, "kscope-work: --iterations must be between 1 and 1000000\n");
    return 2;
  }
  struct sigaction sa = {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::string socket_path;
  if (do_register) {
    if (socket.empty()) {
      auto p = kscope::monitor::default_socket_path();
      if (!p) {
        std::fprintf(stderr, "kscope-work: %s\n", p.error().describe().c_str());
        return 1;
      }
      socket_path = *p;
    } else {
      socket_path = socket;
    }
    auto r = kscope::monitor::call_monitor(socket_path, fmt::format("register {}", ::getpid()));
    if (r && !r->ok && r->message.find("already registered") != std::string::npos) {
      // Started by `kscope monitor -- kscope-work --register`: the monitor registered us.
      std::fprintf(stderr, "kscope-work: note: %s\n", r->message.c_str());
    } else if (!r || !r->ok) {
      std::fprintf(stderr, "kscope-work: cannot register with the monitor: %s\n",
                   r ? r->message.c_str() : r.error().describe().c_str());
      return 1;
    }
  }

  if (start_fd >= 0) {
    char b;
    ssize_t n;
    while ((n = ::read(start_fd, &b, 1)) != 0) {
      if (n < 0 && errno != EINTR) {
        std::perror("kscope-work: --start-fd");
        return 2;
      }
      if (g_stop) return 130;
    }
    ::close(start_fd);
  }

  uint64_t bytes = mb << 20;
  uint64_t pages = bytes / kPage;
  double t0 = (kscope::monotonic_ns() / 1e6);
  auto* region = static_cast<volatile uint8_t*>(::mmap(
      nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  int rc = 0;
  double work_end = 0;  // elapsed time excludes --hold-ms
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  if (region == MAP_FAILED) {
    std::perror("kscope-work: mmap");
    rc = 1;
  } else {
    Rng rng{seed};
    uint64_t window = 0, seq_pos = 0, done = 0;
    for (uint64_t it = 0; it < iterations && !g_stop; ++it) {
      for (uint64_t a = 0; a < accesses; ++a, ++done) {
        uint64_t off;
        if (pattern == "random") {
          off = rng.below(pages) * kPage + rng.below(kPage);
        } else if (pattern == "locality") {
          uint64_t page;
          if (rng.below(100) < kLocalityPercent)
            page = (window + rng.below(kWindowPages)) % pages;
          else
            page = rng.below(pages);
          off = page * kPage + rng.below(kPage);
          if ((done + 1) % kWindowStepEvery == 0) window = (window + 1) % pages;
        } else {
          off = seq_pos;
          seq_pos = (seq_pos + kSequentialStride) % bytes;
        }
        region[off] = static_cast<uint8_t>(a);  // a write: one fault per first-touched page
        if ((a & 0xffff) == 0 && g_stop) break;
      }
    }
    work_end = (kscope::monotonic_ns() / 1e6);
    getrusage(RUSAGE_SELF, &after);
    // Holding: the counters stay still, so a monitor's totals can be compared with /proc.
    for (uint64_t slept = 0; slept < hold_ms && !g_stop; slept += 10) {
      timespec ts{0, 10'000'000};
      nanosleep(&ts, nullptr);
    }
    ::munmap(const_cast<uint8_t*>(region), bytes);
  }
  double elapsed = (work_end > 0 ? work_end : (kscope::monotonic_ns() / 1e6)) - t0;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double user_ms = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3;
  double sys_ms = ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
  double cpu_ms = user_ms + sys_ms;
  if (do_register) {
    auto r = kscope::monitor::call_monitor(socket_path, fmt::format("unregister {}", ::getpid()));
    if (!r || !r->ok)
      std::fprintf(stderr, "kscope-work: note: unregister: %s\n",
                   r ? r->message.c_str() : r.error().describe().c_str());
  }
  std::printf(
      "kscope-work: pid=%d pattern=%s mb=%llu accesses=%llu iterations=%llu "
      "elapsed_ms=%.3f min_faults=%ld maj_faults=%ld cpu_ms=%.1f user_ms=%.1f "
      "sys_ms=%.1f access_min_faults=%ld access_maj_faults=%ld%s\n",
      static_cast<int>(::getpid()), pattern.c_str(), static_cast<unsigned long long>(mb),
      static_cast<unsigned long long>(accesses), static_cast<unsigned long long>(iterations),
      elapsed, ru.ru_minflt, ru.ru_majflt, cpu_ms, user_ms, sys_ms,
      after.ru_minflt - before.ru_minflt, after.ru_majflt - before.ru_majflt,
      g_stop ? " interrupted=1" : "");
  std::fflush(stdout);
  return rc ? rc : (g_stop ? 130 : 0);
}
