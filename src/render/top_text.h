// `kscope top` in batch mode: the table as text (like `top -b`, each row followed by its stack) or
// as one JSON object per table (the layout README documents).
#pragma once

#include <cstddef>
#include <string>

#include "model/top_model.h"
#include "render/top_screen.h"

namespace kscope {

// "name N, name N" of the non-zero drop counters (what `lost N` is made of).
std::string top_lost_breakdown(const TopCounters& c);

// The first max_rows rows of `t`; `stacks` names each row's kernel and user stack.
std::string render_top_text(const TopTable& t, size_t max_rows, const StackProvider& stacks);
std::string render_top_json(const TopTable& t, size_t max_rows, const StackProvider& stacks);

}  // namespace kscope
