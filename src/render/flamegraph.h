// Flame graphs of a StackProfile: an interactive HTML section (canvas; click a frame to zoom into
// it, search highlights matching frames, kernel and user frames in different colours) and a
// standalone SVG. Stacks are merged root first by frame name (function without offset), so a
// function's width is the sum of the values of all stacks through it, like FlameGraph.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/stack_profile.h"

namespace kscope {

struct FlameGraphOptions {
  std::string title = "flame graph";
  size_t value_index = 0;    // which of StackProfile::value_types sets the widths
  bool include_comm = true;  // the process name as the first frame above the root
  std::string id = "fg";     // unique per page (several flame graphs in one report)
  std::string note;          // a line under the title (e.g. what the stacks are)
};

struct FlameNode {
  std::string name;
  int64_t value = 0;
  uint8_t kind = 0;     // 0 user frame, 1 kernel frame, 2 process (comm), 3 root
  int32_t parent = -1;  // index in the node vector; nodes are in depth-first pre-order
  uint32_t depth = 0;
};

// The merged tree, pre-order, node 0 the root ("all"); children sorted by name.
std::vector<FlameNode> build_flame_tree(const StackProfile& profile,
                                        const FlameGraphOptions& options);

// An HTML <section> for the report page (needs the page's flamegraph.js, see html_page.h).
std::string render_flamegraph_section(const StackProfile& profile,
                                      const FlameGraphOptions& options = {});
// A standalone SVG document (hover titles, no script).
std::string render_flamegraph_svg(const StackProfile& profile,
                                  const FlameGraphOptions& options = {});

}  // namespace kscope
