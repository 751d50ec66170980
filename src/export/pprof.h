// pprof's profile.proto (github.com/google/pprof/proto/profile.proto), gzipped: what `go tool
// pprof`, Pyroscope, Parca and Grafana read. Encoded here by hand (protobuf wire format) from a
// StackProfile; no protobuf library needed.
//
// Field mapping (docs/export-formats.md): StackProfile::value_types -> sample_type; each sample
// -> Sample{location_id (leaf first, as pprof wants), value, labels pid/tid/comm}; each frame ->
// one Location (address, mapping) with one Line whose Function is the frame's function (or its
// label when unresolved); each distinct module -> one Mapping (filename, build_id,
// has_functions). Kernel frames use the mapping "[kernel.kallsyms]".
#pragma once

#include <cstdint>
#include <string>

#include "model/stack_profile.h"
#include "util/result.h"

namespace kscope {

struct PprofOptions {
  size_t default_value_index = 0;  // default_sample_type
  bool gzip = true;                // false: the raw protobuf bytes (tests)
};

// The encoded profile (gzipped unless options.gzip is false).
Result<std::string> encode_pprof(const StackProfile& profile, const PprofOptions& options = {});

}  // namespace kscope
