// A test fixture with a synthetic faults recording (4,000 faults) in a fresh temporary
// directory, for the report and export tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "subprocess.h"
#include "synthetic_recording.h"

namespace kscope::testing {

class SyntheticRecordingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir();
    rec_ = dir_ + "/rec.kscope";
    data_ = make_synthetic(4000);
    ASSERT_EQ(write_synthetic(rec_, data_), "");
  }
  void TearDown() override { run({"/bin/rm", "-rf", dir_}); }
  std::string dir_, rec_;
  SyntheticRecording data_;
};

}  // namespace kscope::testing
