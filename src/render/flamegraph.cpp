#include "render/flamegraph.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "render/html_page.h"
#include "render/svg.h"

namespace kscope {

namespace {

struct TreeNode {
  std::string name;
  uint8_t kind = 0;
  int64_t value = 0;
  std::map<std::pair<std::string, uint8_t>, std::unique_ptr<TreeNode>> children;
};

void flatten(const TreeNode& n, int32_t parent, uint32_t depth, std::vector<FlameNode>& out) {
  const auto index = static_cast<int32_t>(out.size());
  out.push_back({n.name, n.value, n.kind, parent, depth});
  for (const auto& [key, child] : n.children) flatten(*child, index, depth + 1, out);
}

std::string frame_name(const ProfileFrame& f) {
  std::string name = f.resolved && !f.function.empty() ? f.function : f.label();
  return name.empty() ? std::string("[unknown]") : name;
}

// FlameGraph-like colours from a hash of the name: warm for user code, blue for the kernel.
std::string frame_color(const FlameNode& n) {
  uint32_t h = 2166136261u;
  for (unsigned char c : n.name) h = (h ^ c) * 16777619u;
  const double v = (h % 1000) / 1000.0;
  switch (n.kind) {
    case 1:
      return fmt::format("rgb({},{},{})", 80 + static_cast<int>(60 * v),
                         140 + static_cast<int>(50 * v), 230);
    case 2:
      return "rgb(190,190,190)";
    case 3:
      return "rgb(220,220,220)";
    default:
      return fmt::format("rgb({},{},{})", 230, 100 + static_cast<int>(110 * v),
                         40 + static_cast<int>(40 * v));
  }
}

}  // namespace

std::vector<FlameNode> build_flame_tree(const StackProfile& profile, const FlameGraphOptions& o) {
  TreeNode root;
  root.name = "all";
  root.kind = 3;
  for (const auto& s : profile.samples) {
    if (o.value_index >= s.values.size() || s.values[o.value_index] <= 0) continue;
    const int64_t v = s.values[o.value_index];
    TreeNode* node = &root;
    root.value += v;
    auto descend = [&](std::string name, uint8_t kind) {
      auto& slot = node->children[{name, kind}];
      if (!slot) {
        slot = std::make_unique<TreeNode>();
        slot->name = std::move(name);
        slot->kind = kind;
      }
      node = slot.get();
      node->value += v;
    };
    if (o.include_comm) descend(s.comm.empty() ? std::string("[unknown]") : s.comm, 2);
    for (auto it = s.frames.rbegin(); it != s.frames.rend(); ++it) {
      if (*it >= profile.frames.size()) continue;
      const ProfileFrame& f = profile.frames[*it];
      descend(frame_name(f), f.kernel ? 1 : 0);
    }
  }
  std::vector<FlameNode> out;
  flatten(root, -1, 0, out);
  return out;
}

std::string render_flamegraph_section(const StackProfile& profile, const FlameGraphOptions& o) {
  auto nodes = build_flame_tree(profile, o);
  nlohmann::json names = nlohmann::json::array(), data = nlohmann::json::array();
  std::map<std::string, size_t> name_index;
  for (const auto& n : nodes) {
    auto [it, inserted] = name_index.emplace(n.name, name_index.size());
    if (inserted) names.push_back(n.name);
    data.push_back(it->second);
    data.push_back(n.value);
    data.push_back(n.kind);
    data.push_back(n.parent);
  }
  std::string unit =
      o.value_index < profile.value_types.size() ? profile.value_types[o.value_index].unit : "";
  std::string type =
      o.value_index < profile.value_types.size() ? profile.value_types[o.value_index].type : "";
  nlohmann::json j = {{"names", names}, {"nodes", data}, {"unit", unit}, {"type", type}};
  std::string id = xml_escape(o.id);
  std::string out = fmt::format("<section class=\"panel\" id=\"{0}-section\"><h2>{1}</h2>\n", id,
                                xml_escape(o.title));
  if (!o.note.empty()) out += fmt::format("<p class=\"note\">{}</p>\n", xml_escape(o.note));
  if (nodes.size() <= 1) {
    out += "<p class=\"empty\">no samples</p></section>\n";
    return out;
  }
  out += fmt::format(
      "<div class=\"fg\" data-fg=\"{0}\"><div class=\"fg-bar\"><input type=\"search\" "
      "placeholder=\"search (regex)\" class=\"fg-search\"> <button class=\"fg-reset\">reset "
      "zoom</button> <span class=\"fg-match\"></span> <span class=\"legend\"><i style=\"background:"
      "rgb(230,150,50)\"></i>user <i style=\"background:rgb(110,165,230)\"></i>kernel <i "
      "style=\"background:rgb(190,190,190)\"></i>process</span></div>"
      "<canvas class=\"fg-canvas\"></canvas><div class=\"fg-info\">&nbsp;</div></div>\n",
      id);
  out += json_script(o.id + "-data", j);
  out += "</section>\n";
  return out;
}

std::string render_flamegraph_svg(const StackProfile& profile, const FlameGraphOptions& o) {
  auto nodes = build_flame_tree(profile, o);
  uint32_t max_depth = 0;
  for (const auto& n : nodes) max_depth = std::max(max_depth, n.depth);
  const int width = 1200, row = 17, pad = 10, top = 40;
  const int height = top + (static_cast<int>(max_depth) + 1) * row + 2 * pad;
  std::string out = svg_open(width, height, o.title);
  out += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
                     pad, xml_escape(o.title));
  if (nodes.empty() || nodes[0].value <= 0) {
    out += "<text x=\"10\" y=\"60\">no samples</text>\n";
    out += kSvgClose;
    return out;
  }
  // x offsets: children laid out left to right inside their parent, in pre-order.
  std::vector<double> x(nodes.size(), 0), next(nodes.size(), 0);
  const double scale = static_cast<double>(width - 2 * pad) / static_cast<double>(nodes[0].value);
  const std::string unit =
      o.value_index < profile.value_types.size() ? profile.value_types[o.value_index].unit : "";
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    if (n.parent >= 0) {
      x[i] = next[n.parent];
      next[n.parent] += static_cast<double>(n.value) * scale;
    } else {
      x[i] = pad;
    }
    next[i] = x[i];
    const double w = static_cast<double>(n.value) * scale;
    if (w < 0.3) continue;
    const double y = height - pad - (n.depth + 1) * row;
    const double pct = 100.0 * static_cast<double>(n.value) / static_cast<double>(nodes[0].value);
    out += fmt::format(
        "<g><title>{} ({} {}, {:.2f}%)</title><rect x=\"{:.2f}\" y=\"{}\" width=\"{:.2f}\" "
        "height=\"{}\" fill=\"{}\" rx=\"2\"/>",
        xml_escape(n.name), n.value, xml_escape(unit), pct, x[i], y, w, row - 1, frame_color(n));
    const size_t fit = static_cast<size_t>(w / 7);
    if (fit >= 3) {
      std::string text = n.name.size() <= fit ? n.name : n.name.substr(0, fit - 2) + "..";
      out += fmt::format("<text x=\"{:.2f}\" y=\"{}\" font-size=\"11\">{}</text>", x[i] + 3, y + 12,
                         xml_escape(text));
    }
    out += "</g>\n";
  }
  out += kSvgClose;
  return out;
}

}  // namespace kscope
