#include "model/fault_record.h"

#include <gtest/gtest.h>

namespace kscope {
namespace {

TEST(FaultRecordNames, SegmentNamesRoundTrip) {
  for (int i = 0; i < kSegmentCount; ++i) {
    auto s = static_cast<Segment>(i);
    auto parsed = parse_segment(to_string(s));
    ASSERT_TRUE(parsed.has_value()) << to_string(s);
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_FALSE(parse_segment("bss").has_value());
}

TEST(FaultRecordNames, FieldNamesMatchTheOutputContract) {
  EXPECT_EQ(to_string(Access::kRead), "read");
  EXPECT_EQ(to_string(Access::kWrite), "write");
  EXPECT_EQ(to_string(Access::kExec), "exec");
  EXPECT_EQ(to_string(FaultMode::kUser), "user");
  EXPECT_EQ(to_string(FaultMode::kKernel), "kernel");
  EXPECT_EQ(to_string(FaultKind::kMinor), "minor");
  EXPECT_EQ(to_string(FaultKind::kMajor), "major");
  EXPECT_EQ(to_string(Segment::kCode), "code");
  EXPECT_EQ(to_string(Segment::kOther), "other");
  EXPECT_EQ(to_string(Segment::kUnknown), "unknown");
  EXPECT_EQ(parse_segment("unknown"), Segment::kUnknown);
}

}  // namespace
}  // namespace kscope
