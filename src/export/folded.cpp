#include "export/folded.h"

#include <cerrno>
#include <map>

#include "util/fd.h"
#include "util/invoking_user.h"

namespace kscope {

std::string folded_frame_name(const ProfileFrame& frame, bool annotate_kernel) {
  std::string name = frame.resolved ? frame.function : frame.label();
  for (char& c : name) {
    if (c == ';') c = ':';
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (name.empty()) name = "[unknown]";
  if (frame.kernel && annotate_kernel) name += "_[k]";
  return name;
}

Status write_folded(const StackProfile& profile, std::FILE* out, const FoldedOptions& options) {
  if (options.value_index >= profile.value_types.size() && !profile.samples.empty()) {
    return make_error("folded: the profile has no value column " +
                      std::to_string(options.value_index));
  }
  std::map<std::string, int64_t> lines;
  std::string line;
  for (const auto& sample : profile.samples) {
    if (options.value_index >= sample.values.size()) continue;
    int64_t value = sample.values[options.value_index];
    if (value == 0) continue;
    line.clear();
    if (options.include_comm) {
      std::string comm = sample.comm.empty() ? "[unknown]" : sample.comm;
      for (char& c : comm) {
        if (c == ';' || c == ' ' || c == '\n' || c == '\t') c = '_';
      }
      line = comm;
    }
    // Frames are stored leaf first; folded lines are root first.
    for (auto it = sample.frames.rbegin(); it != sample.frames.rend(); ++it) {
      if (*it >= profile.frames.size()) continue;
      if (!line.empty()) line += ';';
      line += folded_frame_name(profile.frames[*it], options.annotate_kernel);
    }
    if (line.empty()) line = "[no stack]";
    lines[line] += value;
  }
  for (const auto& [stack, value] : lines) {
    if (std::fprintf(out, "%s %lld\n", stack.c_str(), static_cast<long long>(value)) < 0) {
      return make_error("folded: write failed", errno);
    }
  }
  if (std::fflush(out) != 0) return make_error("folded: write failed", errno);
  return {};
}

Status write_folded_file(const StackProfile& profile, const std::string& path,
                         const FoldedOptions& options) {
  auto fd = create_output_file(path, 0666);  // through sudo: the invoking user's file
  if (!fd) return make_error("cannot write '" + path + "'", fd.error().sys_errno);
  std::FILE* f = ::fdopen(fd->release(), "w");
  if (!f) return make_error("cannot write '" + path + "'", errno);
  Status st = write_folded(profile, f, options);
  if (std::fclose(f) != 0 && st) return make_error("cannot write '" + path + "'", errno);
  return st;
}

}  // namespace kscope
