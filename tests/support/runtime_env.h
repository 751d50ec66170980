// Shared set-up for runtime tests: they need root (CAP_BPF + CAP_PERFMON) and a BPF-capable
// kernel. Without privileges they skip and say why, unless KSCOPE_REQUIRE_BPF=1 (CI), where a
// skip would hide a failure, so they fail instead.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace kscope::testing {

// Built with KSCOPE_SANITIZE (make check-sanitize): kscope runs 2-3 times slower and its resident
// memory holds AddressSanitizer's shadow and its quarantine of freed blocks (up to 256 MiB that
// are freed but stay resident). Tests scale bounds of time and CPU by kSanitizerSlowdown and
// skip bounds of resident memory, saying so; their correctness assertions never change.
#ifdef KSCOPE_SANITIZE_BUILD
inline constexpr bool kSanitizerBuild = true;
#else
inline constexpr bool kSanitizerBuild = false;
#endif
inline constexpr double kSanitizerSlowdown = kSanitizerBuild ? 3.0 : 1.0;

inline bool bpf_required() {
  const char* v = std::getenv("KSCOPE_REQUIRE_BPF");
  return v && std::string(v) == "1";
}

// A fresh, empty directory for the running test: PREFIX-PID-TESTNAME in the temporary directory
// (the pid and the name keep parallel runs and tests apart). The fixture removes it.
inline std::filesystem::path fresh_test_dir(const std::string& prefix) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              (prefix + "-" + std::to_string(::getpid()) + "-" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace kscope::testing

// Use at the top of every runtime test.
#define KSCOPE_REQUIRE_ROOT_OR_SKIP()                                                         \
  do {                                                                                        \
    if (::geteuid() != 0) {                                                                   \
      if (::kscope::testing::bpf_required())                                                  \
        FAIL() << "KSCOPE_REQUIRE_BPF=1 but not running as root: runtime tests cannot run";   \
      GTEST_SKIP() << "runtime test needs root (CAP_BPF+CAP_PERFMON); run 'sudo make check'"; \
    }                                                                                         \
  } while (0)
