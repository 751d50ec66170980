// The self-contained HTML page of `kscope report`: CSS and scripts (src/render/assets/, embedded
// into the binary at build time by cmake/EmbedAssets.cmake) are inlined, data goes into
// <script type="application/json"> blocks, nothing is fetched from the network.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace kscope {

// <script type="application/json" id="ID">...</script> with the JSON made safe for inclusion in
// HTML: invalid UTF-8 replaced, and < > & written as \u escapes so no string from the recording
// can close the script element.
std::string json_script(std::string_view id, const nlohmann::json& value);

// A whole page: <head> with the inlined CSS, `body`, then the inlined scripts.
std::string html_page(std::string_view title, std::string_view body);

std::string base64_encode(std::string_view bytes);

}  // namespace kscope
