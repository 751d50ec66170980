#include "study/pressure.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <utility>
#include <vector>

#include "study/experiment.h"
#include "util/fd.h"
#include "util/file.h"

namespace kscope::study {

namespace {

// One state file per running study: /run/kscope/study-state.PID.
constexpr const char* kStudyStateDir = "/run/kscope";
constexpr const char* kStudyStatePrefix = "study-state.";

std::string study_state_path(pid_t pid) {
  return fmt::format("{}/{}{}", kStudyStateDir, kStudyStatePrefix, pid);
}

}  // namespace

Status Pressure::setup(uint64_t limit_mb, uint64_t swap_mb, const std::string& mode) {
  KSCOPE_TRY(setup_cgroup(limit_mb));
  KSCOPE_TRY(setup_swap(swap_mb, mode));
  return {};
}

void Pressure::restore() {
  if (swap_on_) {
    if (::swapoff(swap_path_.c_str()) != 0)
      std::fprintf(stderr, "kscope: warning: swapoff %s: %s\n", swap_path_.c_str(),
                   std::strerror(errno));
    swap_on_ = false;
  }
  if (zram_index_ >= 0) {
    auto ignored = write_sysfs(fmt::format("/sys/block/zram{}/reset", zram_index_), "1");
    if (zram_hot_added_) {
      auto ignored2 =
          write_sysfs("/sys/class/zram-control/hot_remove", std::to_string(zram_index_));
      (void)ignored2;
    }
    (void)ignored;
    zram_index_ = -1;
  }
  if (!swap_file_.empty()) {
    ::unlink(swap_file_.c_str());
    swap_file_.clear();
  }
  if (!cgroup_dir_.empty()) {
    for (int i = 0; i < 50 && ::rmdir(cgroup_dir_.c_str()) != 0 && errno == EBUSY; ++i)
      sleep_ms(100);
    cgroup_dir_.clear();
  }
  ::unlink(study_state_path(::getpid()).c_str());
}

void Pressure::recover_leftovers() {
  DIR* dir = ::opendir(kStudyStateDir);
  if (!dir) return;
  std::vector<std::string> files;
  while (auto* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.rfind(kStudyStatePrefix, 0) == 0)
      files.push_back(std::string(kStudyStateDir) + "/" + name);
  }
  ::closedir(dir);
  for (const auto& f : files) recover_one(f);
}

void Pressure::recover_one(const std::string& path) {
  // Only a regular file root wrote: the steps it lists are carried out as root.
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
      (st.st_mode & 022) != 0) {
    std::fprintf(stderr, "kscope: ignoring %s: not a regular file written by root\n", path.c_str());
    return;
  }
  auto text = read_file(path, 4096);
  if (!text) return;
  std::istringstream in(*text);
  std::string key, value;
  pid_t owner = 0;
  std::vector<std::pair<std::string, std::string>> steps;
  while (in >> key >> value) {
    if (key == "pid")
      owner = std::atoi(value.c_str());
    else
      steps.emplace_back(key, value);
  }
  if (owner > 0 && ::kill(owner, 0) == 0) return;  // still running
  std::fprintf(stderr, "kscope: cleaning up after a study that did not finish (pid %d)\n", owner);
  // Its workers may still run inside the cgroup: stop them first, or swapoff and rmdir fail.
  for (auto& [k, v] : steps) {
    if (k != "cgroup") continue;
    for (int round = 0; round < 50; ++round) {
      auto procs = read_file(v + "/cgroup.procs", 1 << 16);
      if (!procs || procs->empty()) break;
      std::istringstream ps(*procs);
      pid_t p;
      while (ps >> p) ::kill(p, SIGKILL);
      sleep_ms(100);
    }
  }
  for (auto& [k, v] : steps)
    if (k == "swap") ::swapoff(v.c_str());
  for (auto& [k, v] : steps) {
    if (k == "zram") {
      auto a = write_sysfs(fmt::format("/sys/block/zram{}/reset", v), "1");
      auto b = write_sysfs("/sys/class/zram-control/hot_remove", v);
      (void)a;
      (void)b;
    } else if (k == "zram-reused") {
      auto a = write_sysfs(fmt::format("/sys/block/zram{}/reset", v), "1");
      (void)a;
    } else if (k == "swapfile") {
      ::unlink(v.c_str());
    } else if (k == "cgroup") {
      ::rmdir(v.c_str());
    }
  }
  ::unlink(path.c_str());
}

void Pressure::save_state() {
  std::string s = fmt::format("pid {}\n", ::getpid());
  if (!cgroup_dir_.empty()) s += "cgroup " + cgroup_dir_ + "\n";
  if (zram_index_ >= 0)
    s += fmt::format("{} {}\n", zram_hot_added_ ? "zram" : "zram-reused", zram_index_);
  if (!swap_file_.empty()) s += "swapfile " + swap_file_ + "\n";
  if (swap_on_) s += "swap " + swap_path_ + "\n";
  // Root's own file, 0600, never handed to a sudo user (recover_one() acts on what it says, as
  // root): not through OutputFile.
  ::mkdir(kStudyStateDir, 0755);
  std::string path = study_state_path(::getpid());
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd || ::write(fd.get(), s.data(), s.size()) != static_cast<ssize_t>(s.size()))
    std::fprintf(stderr,
                 "kscope: warning: cannot write %s: %s (a killed study could not be "
                 "cleaned up by the next one)\n",
                 path.c_str(), std::strerror(errno));
}

Status Pressure::setup_cgroup(uint64_t limit_mb) {
  std::string name = fmt::format("kscope-study-{}", ::getpid());
  struct stat st;
  if (::stat("/sys/fs/cgroup/memory/memory.limit_in_bytes", &st) == 0) {
    cgroup_dir_ = "/sys/fs/cgroup/memory/" + name;  // cgroup v1
    if (::mkdir(cgroup_dir_.c_str(), 0755) != 0) {
      cgroup_dir_.clear();
      return errno_error("cannot create a memory cgroup under /sys/fs/cgroup/memory");
    }
    save_state();
    KSCOPE_TRY(write_sysfs(cgroup_dir_ + "/memory.limit_in_bytes", std::to_string(limit_mb << 20)));
    procs_file_ = cgroup_dir_ + "/cgroup.procs";
  } else {
    std::string root;
    for (const char* r : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
      auto c = read_file(std::string(r) + "/cgroup.subtree_control", 4096);
      if (c && c->find("memory") != std::string::npos) {
        root = r;
        break;
      }
    }
    if (root.empty())
      return make_error("no memory cgroup controller (neither cgroup v1 memory nor v2 memory)");
    cgroup_dir_ = root + "/" + name;
    if (::mkdir(cgroup_dir_.c_str(), 0755) != 0) {
      cgroup_dir_.clear();
      return errno_error("cannot create a memory cgroup");
    }
    save_state();
    KSCOPE_TRY(write_sysfs(cgroup_dir_ + "/memory.max", std::to_string(limit_mb << 20)));
    procs_file_ = cgroup_dir_ + "/cgroup.procs";
  }
  description_ = fmt::format("memory cgroup {} limited to {} MiB", cgroup_dir_, limit_mb);
  return {};
}

Status Pressure::setup_swap(uint64_t swap_mb, const std::string& mode) {
  std::string why_not_zram;
  if (mode == "zram" || mode == "auto") {
    auto st = setup_zram(swap_mb);
    if (st) return {};
    why_not_zram = st.error().describe();
    if (mode == "zram") return std::move(st).error();
    std::fprintf(stderr, "kscope: zram not usable (%s); using a swap file on disk\n",
                 why_not_zram.c_str());
  }
  swap_file_ = fmt::format("/var/tmp/kscope-study-swap-{}", ::getpid());
  Fd fd(::open(swap_file_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) {
    swap_file_.clear();
    return errno_error("cannot create a swap file in /var/tmp");
  }
  save_state();
  if (::posix_fallocate(fd.get(), 0, static_cast<off_t>(swap_mb << 20)) != 0)
    return make_error(fmt::format("cannot allocate {} MiB for the swap file", swap_mb));
  fd.reset();
  if (run_quiet({"mkswap", swap_file_}) != 0) return make_error("mkswap failed on the swap file");
  swap_path_ = swap_file_;
  if (::swapon(swap_path_.c_str(), 0) != 0) return errno_error("swapon of the swap file");
  swap_on_ = true;
  save_state();
  description_ += fmt::format("; swap: a {} MiB file on disk ({})", swap_mb, swap_file_);
  return {};
}

Status Pressure::setup_zram(uint64_t swap_mb) {
  struct stat st;
  if (::stat("/sys/class/zram-control/hot_add", &st) == 0) {
    auto idx = read_file("/sys/class/zram-control/hot_add", 64);
    if (!idx) return std::move(idx).error();
    zram_index_ = std::atoi(idx->c_str());
    zram_hot_added_ = true;
  } else if (::stat("/sys/block/zram0/disksize", &st) == 0) {
    auto size = read_file("/sys/block/zram0/disksize", 64);
    if (!size || std::atoll(size->c_str()) != 0) return make_error("zram0 is already in use");
    zram_index_ = 0;
  } else {
    return make_error("no zram device (CONFIG_ZRAM off?)");
  }
  save_state();
  std::string dev = fmt::format("/dev/zram{}", zram_index_);
  for (int i = 0; i < 20 && ::stat(dev.c_str(), &st) != 0; ++i) sleep_ms(50);
  KSCOPE_TRY(write_sysfs(fmt::format("/sys/block/zram{}/disksize", zram_index_),
                         std::to_string(swap_mb << 20)));
  if (run_quiet({"mkswap", dev}) != 0) return make_error(fmt::format("mkswap {} failed", dev));
  swap_path_ = dev;
  if (::swapon(dev.c_str(),
               SWAP_FLAG_PREFER | ((100 << SWAP_FLAG_PRIO_SHIFT) & SWAP_FLAG_PRIO_MASK)) != 0)
    return errno_error(fmt::format("swapon {}", dev));
  swap_on_ = true;
  save_state();
  description_ += fmt::format("; swap: {} with {} MiB (compressed in RAM)", dev, swap_mb);
  return {};
}

}  // namespace kscope::study
