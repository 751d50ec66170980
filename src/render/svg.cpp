#include "render/svg.h"

#include <fmt/format.h>

#include <array>
#include <cmath>

namespace kscope {

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c < 0x80) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&#39;";
          break;
        default:
          if (c < 0x20 && c != '\t' && c != '\n')
            out += "\xEF\xBF\xBD";
          else
            out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    // Validate one UTF-8 sequence; copy it when valid, else replace the first byte.
    size_t len = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len != 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    if (ok && len == 2) ok = c >= 0xC2;
    if (ok && len == 3) {
      uint32_t cp = ((c & 0x0F) << 12) | ((p[i + 1] & 0x3F) << 6) | (p[i + 2] & 0x3F);
      ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
    }
    if (ok && len == 4) {
      uint32_t cp = ((c & 0x07) << 18) | ((p[i + 1] & 0x3F) << 12) | ((p[i + 2] & 0x3F) << 6) |
                    (p[i + 3] & 0x3F);
      ok = cp >= 0x10000 && cp <= 0x10FFFF;
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string_view segment_color(Segment s) {
  static constexpr std::array<std::string_view, kSegmentCount> kColors = {
      "#7b3294",  // code
      "#e66101",  // data
      "#1a9641",  // heap
      "#d7191c",  // stack
      "#2c7bb6",  // file
      "#fdae61",  // anon
      "#777777",  // other
      "#bbbbbb",  // unknown
  };
  auto i = static_cast<size_t>(s);
  return i < kColors.size() ? kColors[i] : kColors.back();
}

std::string format_time_label(double ns) {
  double a = std::fabs(ns);
  if (a >= 1e9) return fmt::format("{:g} s", ns / 1e9);
  if (a >= 1e6) return fmt::format("{:g} ms", ns / 1e6);
  if (a >= 1e3) return fmt::format("{:g} us", ns / 1e3);
  return fmt::format("{:g} ns", ns);
}

std::string format_short_count(double v) {
  if (v >= 1e9) return fmt::format("{:.3g}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (v >= 1e4) return fmt::format("{:.3g}k", v / 1e3);
  return fmt::format("{:g}", v);
}

std::string svg_open(int width, int height, std::string_view title) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
      "{1}\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<title>{2}</title>\n<rect width=\"{0}\" height=\"{1}\" fill=\"#ffffff\"/>\n",
      width, height, xml_escape(title));
}

}  // namespace kscope
