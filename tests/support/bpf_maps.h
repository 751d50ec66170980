// BPF maps of a running kscope, read by runtime tests from outside the process.
#pragma once

#include <bpf/bpf.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>

#include "bpf/map_batch.h"
#include "subprocess.h"

namespace kscope::testing {

// An fd of the BPF map named `name` that process `pid` holds (-1: none).
inline int map_of(int pid, const std::string& name) {
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo", ec)) {
    std::istringstream in(read_file(e.path().string()));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("map_id:", 0) != 0) continue;
      int fd = bpf_map_get_fd_by_id(static_cast<uint32_t>(std::stoul(line.substr(7))));
      if (fd < 0) continue;
      bpf_map_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && name == info.name) return fd;
      close(fd);
    }
  }
  return -1;
}

// The number of entries of a map keyed by a 32-bit id (stack maps).
inline size_t entries(int fd) { return bpf::map_keys<uint32_t>(fd).size(); }

}  // namespace kscope::testing
