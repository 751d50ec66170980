// The user-space form of one page fault, decoded from the kernel record
// (include/kscope/abi/faults.h). Models, renderers, exporters and the recording format use this;
// none of them include libbpf.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kscope {

enum class Access : uint8_t { kRead = 0, kWrite = 1, kExec = 2 };
enum class FaultMode : uint8_t { kUser = 0, kKernel = 1 };
enum class FaultKind : uint8_t { kMinor = 0, kMajor = 1 };
// Decided in the kernel at fault time from the process's mm bounds and the VMA, see
// bpf/faults.bpf.c classify_segment(). The numeric values are part of the recording format.
enum class Segment : uint8_t {
  kCode = 0,     // [start_code, end_code) of the main executable
  kData = 1,     // [start_data, start_brk): .data and .bss
  kHeap = 2,     // [start_brk, brk)
  kStack = 3,    // the main thread's stack VMA
  kFile = 4,     // any other file-backed mapping
  kAnon = 5,     // any other anonymous mapping
  kOther = 6,    // vdso/vvar or no VMA
  kUnknown = 7,  // not classified: the VMA lookup found mmap_lock contended (counted)
};
inline constexpr int kSegmentCount = 8;

struct FaultRecord {
  uint64_t time_ns = 0;  // since tracing started (fault entry time)
  uint32_t pid = 0;      // thread group id
  uint32_t tid = 0;
  uint64_t addr = 0;  // faulting virtual address
  uint64_t ip = 0;    // instruction pointer at the fault (kernel address when mode is kernel)
  Access access = Access::kRead;
  FaultMode mode = FaultMode::kUser;
  FaultKind kind = FaultKind::kMinor;
  Segment segment = Segment::kOther;
  std::optional<uint64_t> latency_ns;  // fault entry to resolution; empty when unknown
  uint32_t cpu = 0;                    // CPU on which the fault was taken (at entry)
  uint32_t stack = 0;  // kscope faults --stacks: FaultStack::id (model/fault_stacks.h); 0 none

  bool operator==(const FaultRecord&) const = default;
};

std::string_view to_string(Access a);
std::string_view to_string(FaultMode m);
std::string_view to_string(FaultKind k);
std::string_view to_string(Segment s);
std::optional<Segment> parse_segment(std::string_view name);

}  // namespace kscope
