// kscope's libbpf logger: messages are formatted whole (a verifier log comes as one message of
// many kilobytes), and what is kept for error reports ends with the line naming the error.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstdarg>
#include <string>

#include "bpf/libbpf_util.h"

namespace {

libbpf_print_fn_t g_installed = nullptr;

int call_installed(enum libbpf_print_level level, const char* format, ...) {
  va_list args;
  va_start(args, format);
  int r = g_installed(level, format, args);
  va_end(args);
  return r;
}

TEST(LibbpfLog, KeepsTheEndOfALongVerifierLogWithWholeLines) {
  kscope::bpf::install_libbpf_logger(0);
  // libbpf_set_print returns the function it replaces: the one kscope installed.
  g_installed = libbpf_set_print(nullptr);
  ASSERT_NE(g_installed, nullptr);
  std::string log;
  for (int i = 0; i < 3000; i++) log += "; insn " + std::to_string(i) + ": r1 = *(u64 *)(r10 -8)\n";
  log += "R1 invalid mem access 'scalar'\nprocessed 3001 insns\n";
  ASSERT_GT(log.size(), 64u * 1024);
  call_installed(LIBBPF_WARN,
                 "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n%s-- END PROG LOAD LOG --\n",
                 log.c_str());
  call_installed(LIBBPF_WARN, "libbpf: failed to load object '%s'\n", "top_bpf");
  libbpf_set_print(g_installed);

  std::string tail = kscope::bpf::last_libbpf_log(2);
  EXPECT_NE(tail.find("R1 invalid mem access 'scalar'"), std::string::npos) << tail;
  EXPECT_NE(tail.find("-- END PROG LOAD LOG --"), std::string::npos);
  EXPECT_NE(tail.find("failed to load object 'top_bpf'"), std::string::npos);
  // Cut to its end, at a line boundary, and says so.
  EXPECT_EQ(tail.rfind("[...]\n", 0), 0u) << tail.substr(0, 80);
  EXPECT_EQ(tail.find("-- BEGIN PROG LOAD LOG --"), std::string::npos);
  EXPECT_LT(tail.size(), 8192u + 200u);
  EXPECT_EQ(tail.substr(6, 7), "; insn ") << "the first kept line is whole";
}

}  // namespace
