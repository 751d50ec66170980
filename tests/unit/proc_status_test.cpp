// The Tgid line of /proc/ID/status, which tells a thread id from a process id: parsed from text
// no one validated (kscope runs as root), so malformed input is an error, never a guess.
#include <gtest/gtest.h>
#include <unistd.h>

#include "trace/proc.h"

namespace kscope::proc {
namespace {

TEST(ProcStatus, TgidOfAThreadIsItsProcess) {
  auto t = parse_status_tgid(
      "Name:\tworker\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n"
      "Ngid:\t0\nPid:\t4250\nPPid:\t1\n");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, 4242);
}

TEST(ProcStatus, MalformedTgidIsAnError) {
  EXPECT_FALSE(parse_status_tgid("").ok());
  EXPECT_FALSE(parse_status_tgid("Name:\tx\nPid:\t12\n").ok());
  EXPECT_FALSE(parse_status_tgid("Tgid:\t\n").ok());
  EXPECT_FALSE(parse_status_tgid("Tgid:\t0\n").ok());
  EXPECT_FALSE(parse_status_tgid("Tgid:\t99999999999999999999\n").ok());
  // A process name that looks like a Tgid line is not one.
  auto t = parse_status_tgid("Name:\tTgid: 7\nTgid:\t31\n");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, 31);
}

TEST(ProcStatus, OwnTgid) {
  auto t = read_tgid(getpid());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, getpid());
}

}  // namespace
}  // namespace kscope::proc
