// Names per second when a faults recording is reported (docs/symbols.md, "Measured: speed").
// Builds a recording of N faults (default 1,000,000) whose instruction addresses are spread
// uniformly over the executable mappings of real binaries (this program's own: itself, libc,
// libstdc++, libelf, libdw, liblzma, ...), in P processes (default 20) that share those
// mappings, then times resolve_fault_locations() on it, the step `kscope report` and `kscope
// export` take for a recording without stored names: cold (binaries and debug files read on
// first use) and warm (a second Symbolizer run after the page cache holds the files). Then the
// same recording with the names stored (add_stored_symbols): what a finished recording costs.
// Prints one line per run: faults, distinct addresses, seconds, distinct addresses per second.
//   symbolize_speed [N] [PROCESSES] [RUNS]
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>

#include "model/fault_summary.h"
#include "model/recording.h"
#include "symbols/fault_locations.h"
#include "symbols/proc_maps.h"
#include "symbols/symbolizer.h"

namespace {

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU time of this process: on a loaded machine the wall time mostly measures the others.
double cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kscope;
  size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  uint32_t processes = argc > 2 ? static_cast<uint32_t>(std::strtoul(argv[2], nullptr, 10)) : 20;
  int runs = argc > 3 ? std::atoi(argv[3]) : 3;
  auto maps = read_proc_maps(static_cast<uint32_t>(::getpid()));
  if (!maps) {
    std::fprintf(stderr, "symbolize_speed: %s\n", maps.error().describe().c_str());
    return 1;
  }
  std::vector<Mapping> code;
  for (const Mapping& m : *maps) {
    if (m.executable() && is_file_mapping(m)) code.push_back(m);
  }
  if (code.empty() || processes == 0) return 1;
  Recording rec;
  rec.summary.complete = true;
  for (uint32_t p = 0; p < processes; ++p) {
    MappingSnapshot snap;
    snap.pid = 1000 + p;
    snap.mappings = *maps;
    rec.mappings.push_back(snap);
  }
  std::mt19937_64 rng(42);
  rec.faults.reserve(n);
  std::set<std::pair<uint32_t, uint64_t>> distinct;
  for (size_t i = 0; i < n; ++i) {
    const Mapping& m = code[rng() % code.size()];
    FaultRecord f;
    f.pid = 1000 + static_cast<uint32_t>(rng() % processes);
    f.tid = f.pid;
    f.ip = m.start + rng() % (m.end - m.start);
    f.addr = 0x10000000 + (i << 12);
    f.time_ns = i * 1000;
    rec.faults.push_back(f);
    distinct.insert({f.pid, f.ip});
  }
  std::printf("%zu faults, %zu distinct addresses in %u processes over %zu code mappings\n", n,
              distinct.size(), processes, code.size());
  std::vector<StoredSymbol> stored;
  for (int run = 0; run < runs; ++run) {
    SymbolizerOptions options;
    options.messages = nullptr;
    Symbolizer symbolizer(options);
    double t0 = now_s();
    FaultLocations locations = resolve_fault_locations(rec, symbolizer);
    double dt = now_s() - t0;
    size_t named = 0;
    for (const auto& s : symbolizer.binary_sources()) named += s.addresses_named;
    std::printf("from the files: %.3f s, %zu addresses named, %.0f addresses/s (%zu frames)\n", dt,
                named, static_cast<double>(distinct.size()) / dt, locations.frames.size());
    if (run == 0) {
      FaultSummary summary;
      for (const FaultRecord& f : rec.faults) summary.add(f);
      stored = name_fault_addresses(summary, symbolizer);
    }
  }
  for (int run = 0; run < runs; ++run) {
    SymbolizerOptions options;
    options.messages = nullptr;
    Symbolizer symbolizer(options);
    double t0 = now_s(), c0 = cpu_s();
    symbolizer.add_stored_symbols(stored);  // as read_recording's reader does, timed with it
    FaultLocations locations = resolve_fault_locations(rec, symbolizer);
    double dt = now_s() - t0, dc = cpu_s() - c0;
    std::printf(
        "from stored names: %.3f s wall, %.3f s CPU, %.0f addresses/s of CPU (%zu frames)\n", dt,
        dc, static_cast<double>(distinct.size()) / dc, locations.frames.size());
  }
  return 0;
}
