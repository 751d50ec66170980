// Reading CSV lines as kscope writes them (RFC 4180 quoting: a field with a comma or a quote is
// quoted, and a quote inside it is doubled).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kscope {

// The fields of one line (without its line ending). An unterminated quoted field runs to the
// end of the line.
std::vector<std::string> split_csv_line(std::string_view line);

}  // namespace kscope
