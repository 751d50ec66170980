#include "render/html_page.h"

#include <fmt/format.h>

#include "render/assets.h"
#include "render/svg.h"

namespace kscope {

std::string json_script(std::string_view id, const nlohmann::json& value) {
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string safe;
  safe.reserve(text.size() + 16);
  for (char c : text) {
    switch (c) {
      case '<':
        safe += "\\u003c";
        break;
      case '>':
        safe += "\\u003e";
        break;
      case '&':
        safe += "\\u0026";
        break;
      default:
        safe.push_back(c);
    }
  }
  return fmt::format("<script type=\"application/json\" id=\"{}\">{}</script>\n", xml_escape(id),
                     safe);
}

std::string base64_encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = p[i] << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (p[i] << 16) | (p[i + 1] << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string html_page(std::string_view title, std::string_view body) {
  std::string out;
  out.reserve(body.size() + 64 * 1024);
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  // No network: a CSP that forbids any fetch, so a hostile recording cannot make the page load
  // anything even if escaping had a hole.
  out +=
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src "
      "data:\">\n";
  out += fmt::format("<title>{}</title>\n<style>\n", xml_escape(title));
  out += assets::kReportCss;
  out += "</style></head><body>\n";
  out += body;
  out += "<script>\n";
  out += assets::kReportJs;
  out += "\n</script>\n<script>\n";
  out += assets::kFlamegraphJs;
  out += "\n</script>\n</body></html>\n";
  return out;
}

}  // namespace kscope
