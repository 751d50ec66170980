// ExecRanges (model/process_info.h), the frame-pointer cut of kscope faults --stacks=fp and
// kscope top: exact boundaries ([start, end)), mappings in any order and overlapping, the
// non-executable ones ignored, and nothing cut when nothing is known.
#include <gtest/gtest.h>

#include <vector>

#include "model/process_info.h"

namespace kscope {
namespace {

Mapping map(uint64_t start, uint64_t end, const char* perms = "r-xp") {
  Mapping m;
  m.start = start;
  m.end = end;
  m.perms = perms;
  return m;
}

TEST(ExecRanges, BoundariesAreHalfOpen) {
  ExecRanges r({map(0x1000, 0x2000)});
  EXPECT_FALSE(r.empty());
  EXPECT_FALSE(r.contains(0xfff));
  EXPECT_TRUE(r.contains(0x1000));
  EXPECT_TRUE(r.contains(0x1fff));
  EXPECT_FALSE(r.contains(0x2000));
  EXPECT_FALSE(r.contains(0));
  EXPECT_FALSE(r.contains(UINT64_MAX));
}

TEST(ExecRanges, OnlyExecutableMappingsCount) {
  ExecRanges r({map(0x1000, 0x2000, "r--p"), map(0x2000, 0x3000, "r-xp"),
                map(0x3000, 0x4000, "rw-p"), map(0x5000, 0x6000, "--xp")});
  EXPECT_FALSE(r.contains(0x1800));
  EXPECT_TRUE(r.contains(0x2800));
  EXPECT_FALSE(r.contains(0x3800));
  EXPECT_TRUE(r.contains(0x5800));
  EXPECT_FALSE(r.contains(0x4800));  // the gap
  // "rw" and a short perms string are not executable.
  EXPECT_TRUE(ExecRanges({map(0x1000, 0x2000, "rw"), map(0x3000, 0x4000, "")}).empty());
}

TEST(ExecRanges, UnsortedInputIsSorted) {
  ExecRanges r({map(0x9000, 0xa000), map(0x1000, 0x2000), map(0x5000, 0x6000)});
  for (uint64_t a : {0x1000ull, 0x1fffull, 0x5000ull, 0x5fffull, 0x9000ull, 0x9fffull})
    EXPECT_TRUE(r.contains(a)) << std::hex << a;
  for (uint64_t a : {0x2000ull, 0x4fffull, 0x6000ull, 0x8fffull, 0xa000ull})
    EXPECT_FALSE(r.contains(a)) << std::hex << a;
}

// A /proc snapshot merged with mmap records can overlap: a range inside another, one that
// extends another, and one that only touches it. A lookup past the end of the inner range (the
// one a single binary search lands on) is still inside the outer one.
TEST(ExecRanges, OverlappingAndTouchingRangesMerge) {
  ExecRanges r({map(0x1000, 0x9000), map(0x2000, 0x3000), map(0x8000, 0xa000), map(0xa000, 0xb000),
                map(0x20000, 0x21000)});
  EXPECT_TRUE(r.contains(0x1000));
  EXPECT_TRUE(r.contains(0x5000));  // past the inner [0x2000,0x3000), inside [0x1000,0x9000)
  EXPECT_TRUE(r.contains(0x9800));  // the extension
  EXPECT_TRUE(r.contains(0xafff));  // the touching one
  EXPECT_FALSE(r.contains(0xb000));
  EXPECT_FALSE(r.contains(0x1ffff));
  EXPECT_TRUE(r.contains(0x20000));
  // The same ranges given twice change nothing.
  ExecRanges twice({map(0x2000, 0x3000), map(0x2000, 0x3000)});
  EXPECT_TRUE(twice.contains(0x2fff));
  EXPECT_FALSE(twice.contains(0x3000));
}

TEST(ExecRanges, EmptyAndDegenerateInput) {
  ExecRanges none;
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(none.contains(0x1000));
  ExecRanges from_nothing(std::vector<Mapping>{});
  EXPECT_TRUE(from_nothing.empty());
  ExecRanges zero_length({map(0x1000, 0x1000)});  // holds no address
  EXPECT_TRUE(zero_length.empty());
  EXPECT_FALSE(zero_length.contains(0x1000));
}

TEST(ExecRanges, FramesAreCutAtTheFirstWordOutsideCode) {
  ExecRanges r({map(0x400000, 0x401000), map(0x7f0000000000, 0x7f0000100000)});
  // The leaf is kept even outside code (a fault in JIT or a bad jump: it is where the thread
  // was); the first return address in data (0x1e8480, a loop count) ends the stack.
  std::vector<uint64_t> frames = {0x10, 0x400100, 0x7f0000000010, 0x1e8480, 0x400200};
  EXPECT_EQ(r.frames_to_keep(frames), 3u);
  EXPECT_EQ(r.frames_to_keep({0x400100, 0x400fff}), 2u);
  EXPECT_EQ(r.frames_to_keep({0x400100, 0x401000}), 1u);  // one past the end
  EXPECT_EQ(r.frames_to_keep({}), 0u);
  EXPECT_EQ(r.frames_to_keep({0x1}), 1u);
  // Nothing known of the process: nothing can be judged, so nothing is cut.
  EXPECT_EQ(ExecRanges().frames_to_keep(frames), frames.size());
}

}  // namespace
}  // namespace kscope
