// The memory pressure of the thrashing study: a memory cgroup with a limit, and swap (on a new
// zram device, or a file on disk when zram is not available). Everything is undone by restore()
// and the destructor; the undo steps are also written to /run/kscope/study-state.PID before
// each change, so a study killed with SIGKILL is cleaned up by the next one
// (recover_leftovers()).
#pragma once

#include <cstdint>
#include <string>

#include "util/result.h"

namespace kscope::study {

class Pressure {
 public:
  ~Pressure() { restore(); }

  // mode: "auto" (zram, else a file), "zram" or "file".
  Status setup(uint64_t limit_mb, uint64_t swap_mb, const std::string& mode);
  // The cgroup's procs file: writing a pid there moves the process into the cgroup.
  const std::string& procs_file() const { return procs_file_; }
  std::string describe() const { return description_; }
  // Turns swap off, removes the zram device / swap file and the cgroup, drops the state file.
  void restore();

  // Undoes what studies killed with SIGKILL left behind (their state files name it).
  static void recover_leftovers();

 private:
  static void recover_one(const std::string& path);
  void save_state();
  Status setup_cgroup(uint64_t limit_mb);
  Status setup_swap(uint64_t swap_mb, const std::string& mode);
  Status setup_zram(uint64_t swap_mb);

  std::string cgroup_dir_;
  std::string procs_file_;
  int zram_index_ = -1;
  bool zram_hot_added_ = false;
  std::string swap_path_;
  std::string swap_file_;
  bool swap_on_ = false;
  std::string description_;
};

}  // namespace kscope::study
