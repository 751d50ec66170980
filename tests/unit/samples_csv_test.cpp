// The study reads the monitor's CSV back through monitor/samples_csv.h: by column name, checked
// against rows the monitor's own writer (format_csv_row) produced.
#include "monitor/samples_csv.h"

#include <gtest/gtest.h>

#include "monitor/monitor.h"

namespace kscope::monitor {
namespace {

TEST(SamplesCsv, ReadsBackWhatTheWriterWrote) {
  SampleRow a;
  a.time_ns = 50'053'000;
  a.pid = 28391;
  a.comm = "kscope-work";
  a.min_faults = 16710;
  a.maj_faults = 3;
  a.min_faults_total = 16710;
  a.maj_faults_total = 7;
  a.cpu_util = 0.7193;
  a.rss_kb = 69808;
  SampleRow b = a;
  b.comm = "a,\"quoted\" name";
  SampleRow c = a;
  c.aggregate = true;
  std::string text = std::string(kCsvHeader) + "\n" + format_csv_row(a) + "\n" + format_csv_row(b) +
                     "\n" + format_csv_row(c) + "\n";
  auto rows = parse_samples_csv(text);
  ASSERT_TRUE(rows.ok()) << rows.error().message;
  ASSERT_EQ(rows->size(), 3u);
  const auto& r = (*rows)[0];
  EXPECT_NEAR(r.time_s, 0.050053, 1e-9);
  EXPECT_EQ(r.pid, "28391");
  EXPECT_EQ(r.comm, "kscope-work");
  EXPECT_EQ(r.min_faults, 16710u);
  EXPECT_EQ(r.maj_faults, 3u);
  EXPECT_EQ(r.min_total, 16710u);
  EXPECT_EQ(r.maj_total, 7u);
  EXPECT_NEAR(r.cpu_util, 0.7193, 1e-9);
  EXPECT_EQ(r.rss_kb, 69808u);
  EXPECT_EQ((*rows)[1].comm, "a,\"quoted\" name");
  EXPECT_EQ((*rows)[2].pid, "all");
  EXPECT_EQ((*rows)[2].comm, "*");
}

TEST(SamplesCsv, FindsColumnsByNameInAnyOrder) {
  auto rows = parse_samples_csv(
      "rss_kb,extra,pid,comm,time_ms,cpu_util,min_faults,maj_faults,min_faults_total,"
      "maj_faults_total\n"
      "100,x,42,prog,1000,0.5,1,2,3,4\n");
  ASSERT_TRUE(rows.ok()) << rows.error().message;
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].pid, "42");
  EXPECT_EQ((*rows)[0].rss_kb, 100u);
  EXPECT_DOUBLE_EQ((*rows)[0].time_s, 1.0);
  EXPECT_EQ((*rows)[0].maj_total, 4u);
}

TEST(SamplesCsv, BadInputIsAnErrorNamingTheLine) {
  auto missing = parse_samples_csv("time_ms,pid,comm\n1,2,x\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("min_faults"), std::string::npos);
  std::string header = std::string(kCsvHeader) + "\n";
  auto short_row = parse_samples_csv(header + "1,2,x\n");
  ASSERT_FALSE(short_row.ok());
  EXPECT_NE(short_row.error().message.find("line 2"), std::string::npos)
      << short_row.error().message;
  auto bad_number = parse_samples_csv(header + "1,2,x,1,2,3,4,zero,5\n");
  ASSERT_FALSE(bad_number.ok());
  EXPECT_NE(bad_number.error().message.find("line 2"), std::string::npos);
  EXPECT_FALSE(parse_samples_csv("").ok());
}

}  // namespace
}  // namespace kscope::monitor
