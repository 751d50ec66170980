// CSV lines as kscope writes them (append_csv_field) and reads them back (split_csv_line).
#include "util/csv.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "export/fault_event_writer.h"

namespace kscope {
namespace {

TEST(Csv, PlainFieldsSplitOnCommas) {
  EXPECT_EQ(split_csv_line("1,two,,3"), (std::vector<std::string>{"1", "two", "", "3"}));
  EXPECT_EQ(split_csv_line(""), (std::vector<std::string>{""}));
}

TEST(Csv, QuotedFieldsKeepCommasAndDoubledQuotes) {
  EXPECT_EQ(split_csv_line(R"(a,"b,c","say ""hi""",d)"),
            (std::vector<std::string>{"a", "b,c", "say \"hi\"", "d"}));
  // An unterminated quote runs to the end of the line rather than being dropped.
  EXPECT_EQ(split_csv_line(R"(a,"b,c)"), (std::vector<std::string>{"a", "b,c"}));
}

TEST(Csv, WhatTheWriterQuotesReadsBackUnchanged) {
  const std::vector<std::string> names = {
      "plain", "with,comma", "with\"quote", "\"", ",", "tab\there", ""};
  fmt::memory_buffer buf;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) buf.push_back(',');
    append_csv_field(buf, names[i]);
  }
  EXPECT_EQ(split_csv_line(std::string_view(buf.data(), buf.size())), names);
}

}  // namespace
}  // namespace kscope
