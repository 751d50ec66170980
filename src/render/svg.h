// Small helpers shared by the SVG and HTML renderers: escaping of untrusted text (comm, paths and
// symbol names come from a recording, which is untrusted input), number formatting, colours.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/fault_record.h"

namespace kscope {

// Escapes & < > " ' for HTML/XML text and attribute values. Bytes that are not valid UTF-8 and
// control characters become U+FFFD, so a hostile comm cannot break the document's encoding.
std::string xml_escape(std::string_view s);

// Segment colours, the same in the SVG figures and the HTML page (report.js reads them from the
// page data).
std::string_view segment_color(Segment s);

// "1.5 s", "20 ms", "300 us", "15 ns": a time for axis labels.
std::string format_time_label(double ns);
// "12k", "3.4M".
std::string format_short_count(double v);

// Header and footer of a standalone SVG document of the given size.
std::string svg_open(int width, int height, std::string_view title);
inline constexpr std::string_view kSvgClose = "</svg>\n";

}  // namespace kscope
