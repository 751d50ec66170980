// The report page's CSS and scripts, embedded from src/render/assets/ at build time
// (cmake/EmbedAssets.cmake generates the definitions).
#pragma once

namespace kscope::assets {
extern const char kReportCss[];
extern const char kReportJs[];
extern const char kFlamegraphJs[];
}  // namespace kscope::assets
