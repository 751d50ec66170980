// gzip (RFC 1952) with zlib: pprof files and the report's embedded data.
#pragma once

#include <string>

#include "util/result.h"

namespace kscope {

// gzip of `data`; `level` 1..9.
Result<std::string> gzip_compress(const std::string& data, int level = 6);

}  // namespace kscope
