// The .eh_frame table builder against binutils: every row `readelf -wF` prints (CFA rule, rbp
// rule, return address) must be what our table says at that PC, and every row of ours must be
// what readelf says at its PC (or a gap no FDE covers). Checked on libc, ld.so, the C++ kscope
// binary and the -O2 -fomit-frame-pointer test programs (PIE, non-PIE, stripped).
#include "unwind/unwind_table.h"

#include <gtest/gtest.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "subprocess.h"
#include "tools.h"
#include "unwind/eh_frame.h"
#include "unwind/table_loader.h"

namespace kscope::unwind {
namespace {

struct ReadelfRow {
  uint64_t pc = 0;
  std::string cfa, rbp, rbx, ra;
};

struct ReadelfFde {
  uint64_t begin = 0, end = 0;
  std::vector<ReadelfRow> rows;  // empty: the CIE's initial rules apply
  uint64_t cie = 0;
};

struct ReadelfFrames {
  std::map<uint64_t, ReadelfRow> cie_rows;  // CIE offset -> its initial row
  std::vector<ReadelfFde> fdes;
};

// Parses `readelf -wF` output, the part of `section` (.eh_frame or .debug_frame) only.
ReadelfFrames parse_readelf(const std::string& text, const std::string& section = ".eh_frame") {
  ReadelfFrames out;
  std::istringstream in(text);
  std::string line;
  bool in_eh_frame = false;
  std::vector<std::string> columns;
  ReadelfFde* fde = nullptr;
  std::optional<uint64_t> cie_offset;
  while (std::getline(in, line)) {
    if (line.rfind("Contents of the ", 0) == 0) {
      in_eh_frame = line.find(section + " section") != std::string::npos;
      continue;
    }
    if (!in_eh_frame || line.empty()) continue;
    std::istringstream ls(line);
    std::vector<std::string> w;
    for (std::string t; ls >> t;) {
      // "r3 (rbx)": a register rule names the register in parentheses; one column.
      if (t[0] == '(' && !w.empty())
        w.back() += " " + t;
      else
        w.push_back(t);
    }
    if (w.size() >= 4 && w[3] == "FDE") {
      ReadelfFde f;
      auto pcpos = line.find("pc=");
      auto dots = line.find("..", pcpos);
      f.begin = std::stoull(line.substr(pcpos + 3, dots - pcpos - 3), nullptr, 16);
      f.end = std::stoull(line.substr(dots + 2), nullptr, 16);
      f.cie = std::stoull(line.substr(line.find("cie=") + 4, 8), nullptr, 16);
      out.fdes.push_back(f);
      fde = &out.fdes.back();
      cie_offset.reset();
      continue;
    }
    if (w.size() >= 4 && w[3] == "CIE") {
      fde = nullptr;
      cie_offset = std::stoull(w[0], nullptr, 16);
      continue;
    }
    if (w[0] == "LOC") {
      columns = w;
      continue;
    }
    if (w.size() != columns.size() || w[0].size() != 16) continue;
    ReadelfRow row;
    row.pc = std::stoull(w[0], nullptr, 16);
    row.cfa = w[1];
    row.rbp = "u";
    row.rbx = "u";
    for (size_t i = 2; i < columns.size(); ++i) {
      if (columns[i] == "rbp") row.rbp = w[i];
      if (columns[i] == "rbx") row.rbx = w[i];
      if (columns[i] == "ra") row.ra = w[i];
    }
    if (fde)
      fde->rows.push_back(row);
    else if (cie_offset)
      out.cie_rows[*cie_offset] = row;
  }
  return out;
}

const UnwindRow* row_at(const std::vector<UnwindRow>& rows, uint64_t pc) {
  auto it = std::upper_bound(rows.begin(), rows.end(), pc,
                             [](uint64_t p, const UnwindRow& r) { return p < r.pc; });
  if (it == rows.begin()) return nullptr;
  return &*std::prev(it);
}

// "" when they agree, else what differs.
std::string compare(const UnwindRow& ours, const ReadelfRow& theirs) {
  std::string cfa_ok;
  switch (ours.cfa) {
    case CfaRule::kRsp:
    case CfaRule::kRbp:
    case CfaRule::kRbx:
      if (describe_cfa(ours) != theirs.cfa) cfa_ok = "cfa";
      break;
    case CfaRule::kPlt:
    case CfaRule::kSignal:
      if (theirs.cfa != "exp") cfa_ok = "cfa";
      break;
    case CfaRule::kUnsupported:
      // An expression, or a register other than rsp/rbp/rbx.
      if (theirs.cfa.rfind("rsp+", 0) == 0 || theirs.cfa.rfind("rbp+", 0) == 0 ||
          theirs.cfa.rfind("rbx+", 0) == 0)
        cfa_ok = "cfa";
      break;
    case CfaRule::kNone:
      cfa_ok = "cfa (ours: no FDE)";
      break;
  }
  std::string rbp_ok;
  switch (ours.rbp) {
    case RbpRule::kUnchanged:
      if (theirs.rbp != "u" && theirs.rbp != "s") rbp_ok = "rbp";
      break;
    case RbpRule::kOffset:
      if (theirs.rbp != fmt::format("c{:+d}", ours.rbp_offset)) rbp_ok = "rbp";
      break;
    case RbpRule::kUnknown:
      if (theirs.rbp == "u" || theirs.rbp == "s" || theirs.rbp[0] == 'c') rbp_ok = "rbp";
      break;
  }
  // rbx the same way (a signal frame's registers come from the ucontext: unknown to CFI).
  auto reg_differs = [](RbpRule kind, int64_t offset, const std::string& col) {
    switch (kind) {
      case RbpRule::kUnchanged:
        return col != "u" && col != "s";
      case RbpRule::kOffset:
        return col != fmt::format("c{:+d}", offset);
      case RbpRule::kUnknown:
        return col == "u" || col == "s" || col[0] == 'c';
    }
    return true;
  };
  if (ours.cfa != CfaRule::kSignal && reg_differs(ours.rbx, ours.rbx_offset, theirs.rbx))
    rbp_ok += " rbx";
  std::string ra_ok;
  if (ours.ra_undefined != (theirs.ra == "u")) ra_ok = "ra-undefined";
  if (!ours.ra_undefined && ours.cfa != CfaRule::kSignal &&
      ours.ra_unsupported != (theirs.ra != "c-8"))
    ra_ok = "ra";
  std::string all =
      cfa_ok + (rbp_ok.empty() ? "" : " " + rbp_ok) + (ra_ok.empty() ? "" : " " + ra_ok);
  if (all.empty()) return {};
  return fmt::format(
      "{} differs at {:#x}: ours cfa={} off={} rbp={} rbp_off={} rbx={} rbx_off={} ra_undef={} | "
      "readelf cfa={} rbp={} rbx={} ra={}",
      all, theirs.pc, describe_cfa(ours), ours.cfa_offset, static_cast<int>(ours.rbp),
      ours.rbp_offset, static_cast<int>(ours.rbx), ours.rbx_offset, ours.ra_undefined, theirs.cfa,
      theirs.rbp, theirs.rbx, theirs.ra);
}

struct CheckCounts {
  size_t readelf_fdes = 0;  // FDEs readelf lists in the section
  size_t readelf_rows = 0;
  size_t our_rows = 0;
  size_t plt_rows = 0;
  size_t signal_rows = 0;
  size_t ra_undefined_rows = 0;
  size_t rbx_cfa_rows = 0;
};

// Compares both ways; returns counts for further assertions. `section`: .eh_frame or
// .debug_frame (of the file itself, decoded alone).
CheckCounts check_against_readelf(const std::string& path,
                                  const std::string& section = ".eh_frame") {
  CheckCounts counts;
  std::string readelf = ::kscope::testing::find_tool("readelf");
  if (readelf.empty()) {
    ADD_FAILURE() << "readelf (binutils) is needed";
    return counts;
  }
  // readelf exits 1 when it also follows a .gnu_debuglink to a debug file whose .eh_frame is
  // NOBITS (libc6-dbg's ld.so); the table of the file itself is printed all the same.
  auto run = ::kscope::testing::run({readelf, "-wF", path}, 120);
  EXPECT_FALSE(run.timed_out);
  ReadelfFrames frames = parse_readelf(run.out, section);
  EXPECT_GT(frames.fdes.size(), 0u) << path;
  counts.readelf_fdes = frames.fdes.size();

  auto source = read_unwind_source(path);
  EXPECT_TRUE(source.ok()) << (source.ok() ? "" : source.error().describe());
  if (!source.ok()) return counts;
  bool debug = section == ".debug_frame";
  FrameSection in{debug ? std::span<const uint8_t>(source->debug_frame)
                        : std::span<const uint8_t>(source->eh_frame),
                  debug ? 0 : source->eh_frame_vaddr,
                  debug ? FrameSection::Kind::kDebugFrame : FrameSection::Kind::kEhFrame};
  auto table = decode_frames({&in, 1});
  EXPECT_TRUE(table.ok()) << (table.ok() ? "" : table.error().describe());
  if (!table.ok()) return counts;
  const auto& rows = table->rows;
  EXPECT_EQ(table->stats.bad_entries, 0u) << path;
  EXPECT_EQ(table->stats.bad_programs, 0u) << path;
  EXPECT_EQ(table->stats.fdes, frames.fdes.size()) << path;
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end(),
                             [](const UnwindRow& a, const UnwindRow& b) { return a.pc < b.pc; }));
  counts.our_rows = rows.size();

  // readelf -> ours.
  size_t failures = 0;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const ReadelfFde& fde : frames.fdes) {
    if (fde.end > fde.begin) ranges.emplace_back(fde.begin, fde.end);
    std::vector<ReadelfRow> effective = fde.rows;
    if (effective.empty()) {
      auto cie = frames.cie_rows.find(fde.cie);
      if (cie == frames.cie_rows.end()) continue;
      ReadelfRow r = cie->second;
      r.pc = fde.begin;
      effective.push_back(r);
    }
    for (const ReadelfRow& theirs : effective) {
      if (theirs.pc >= fde.end) continue;
      ++counts.readelf_rows;
      const UnwindRow* ours = row_at(rows, theirs.pc);
      if (!ours) {
        if (++failures < 20)
          ADD_FAILURE() << path << ": no row of ours at " << std::hex << theirs.pc;
        continue;
      }
      std::string diff = compare(*ours, theirs);
      if (!diff.empty() && ++failures < 20) ADD_FAILURE() << path << ": " << diff;
    }
  }
  // ours -> readelf: each of our rows is readelf's row at that PC, or a gap.
  std::sort(ranges.begin(), ranges.end());
  for (const UnwindRow& ours : rows) {
    if (ours.cfa == CfaRule::kPlt) ++counts.plt_rows;
    if (ours.cfa == CfaRule::kSignal) ++counts.signal_rows;
    if (ours.ra_undefined) ++counts.ra_undefined_rows;
    if (ours.cfa == CfaRule::kRbx) ++counts.rbx_cfa_rows;
    const ReadelfFde* covering = nullptr;
    for (const ReadelfFde& fde : frames.fdes)
      if (ours.pc >= fde.begin && ours.pc < fde.end) covering = &fde;
    if (!covering) {
      if (ours.cfa != CfaRule::kNone && ++failures < 20)
        ADD_FAILURE() << path << ": our row at " << std::hex << ours.pc
                      << " is outside every FDE but not a gap";
      continue;
    }
    ReadelfRow theirs;
    if (covering->rows.empty()) {
      auto cie = frames.cie_rows.find(covering->cie);
      if (cie == frames.cie_rows.end()) continue;
      theirs = cie->second;
    } else {
      const ReadelfRow* best = nullptr;
      for (const ReadelfRow& r : covering->rows)
        if (r.pc <= ours.pc) best = &r;
      if (!best) continue;
      theirs = *best;
    }
    theirs.pc = ours.pc;
    std::string diff = compare(ours, theirs);
    if (!diff.empty() && ++failures < 20) ADD_FAILURE() << path << " (our row): " << diff;
  }
  EXPECT_EQ(failures, 0u) << path;
  return counts;
}

std::string progs(const std::string& name) {
  return std::string(KSCOPE_TEST_PROGS_DIR) + "/" + name;
}

TEST(UnwindTable, LibcMatchesReadelf) {
  auto counts = check_against_readelf("/lib/x86_64-linux-gnu/libc.so.6");
  EXPECT_GT(counts.readelf_rows, 10000u);
  EXPECT_GE(counts.plt_rows, 1u);           // libc's own .plt
  EXPECT_EQ(counts.signal_rows, 1u);        // __restore_rt
  EXPECT_GE(counts.ra_undefined_rows, 1u);  // clone/clone3's child: the outermost frame
}

TEST(UnwindTable, DynamicLoaderMatchesReadelf) {
  auto counts = check_against_readelf("/lib64/ld-linux-x86-64.so.2");
  EXPECT_GT(counts.readelf_rows, 100u);
  // _dl_runtime_resolve_xsave/xsavec/fxsave and _dl_tlsdesc_dynamic realign rsp and define the
  // CFA from rbx: each such row is followed (CFA = rbx + N), not marked unsupported.
  EXPECT_GE(counts.rbx_cfa_rows, 3u);
}

TEST(UnwindTable, CxxBinaryMatchesReadelf) {
  auto counts = check_against_readelf(KSCOPE_BINARY);
  EXPECT_GT(counts.readelf_rows, 10000u);
}

TEST(UnwindTable, TestProgramsMatchReadelf) {
  for (const char* name : {"unwind_chain", "unwind_chain_nopie", "unwind_chain_stripped"}) {
    SCOPED_TRACE(name);
    auto counts = check_against_readelf(progs(name));
    EXPECT_GT(counts.readelf_rows, 20u);
    EXPECT_GE(counts.plt_rows, 1u);
    EXPECT_GE(counts.ra_undefined_rows, 1u);  // _start
  }
}

// A program built without unwind tables (-fno-asynchronous-unwind-tables -g) and with .eh_frame
// removed: only .debug_frame, whose rows must be readelf's (--debug-dump=frames-interp).
TEST(UnwindTable, DebugFrameMatchesReadelf) {
  auto source = read_unwind_source(progs("unwind_chain_dwarfonly"));
  ASSERT_TRUE(source.ok()) << source.error().describe();
  EXPECT_TRUE(source->eh_frame.empty());
  ASSERT_FALSE(source->debug_frame.empty());
  auto counts = check_against_readelf(progs("unwind_chain_dwarfonly"), ".debug_frame");
  EXPECT_GT(counts.readelf_rows, 20u);
  // The table built for the walker is the .debug_frame's, every chain function covered.
  auto table = build_file_table(*source, "t");
  ASSERT_TRUE(table.ok()) << table.error().describe();
  // Every FDE readelf lists (how many depends on the compiler's inlining: 25 from gcc -O2, 8
  // from clang -O2 in the sanitizer build).
  EXPECT_EQ(table->stats.debug_frame_fdes, counts.readelf_fdes);
  EXPECT_GE(counts.readelf_fdes, 5u);
  EXPECT_EQ(table->stats.bad_entries, 0u);
}

// .debug_frame only fills in what .eh_frame does not cover: libc's .eh_frame decoded together
// with a .debug_frame covering the same code gives .eh_frame's rows, its FDEs counted as left out.
TEST(UnwindTable, DebugFrameDoesNotOverrideEhFrame) {
  auto libc = read_unwind_source("/lib/x86_64-linux-gnu/libc.so.6");
  auto dwarf = read_unwind_source(progs("unwind_chain_dwarfonly"));
  ASSERT_TRUE(libc.ok() && dwarf.ok());
  auto alone = decode_eh_frame(libc->eh_frame, libc->eh_frame_vaddr);
  ASSERT_TRUE(alone.ok());
  // The program's own .debug_frame twice: the second copy overlaps the first everywhere and
  // adds nothing.
  std::vector<FrameSection> twice = {{dwarf->debug_frame, 0, FrameSection::Kind::kDebugFrame},
                                     {dwarf->debug_frame, 0, FrameSection::Kind::kDebugFrame}};
  auto once = decode_frames({twice.data(), 1});
  auto both = decode_frames(twice);
  ASSERT_TRUE(once.ok() && both.ok());
  EXPECT_EQ(once->rows, both->rows);
  EXPECT_EQ(both->stats.shadowed_fdes, once->stats.debug_frame_fdes);
  // And .eh_frame + an unrelated .debug_frame: .eh_frame's rows all stay.
  std::vector<FrameSection> mixed = {
      {libc->eh_frame, libc->eh_frame_vaddr, FrameSection::Kind::kEhFrame},
      {dwarf->debug_frame, 0, FrameSection::Kind::kDebugFrame}};
  auto merged = decode_frames(mixed);
  ASSERT_TRUE(merged.ok());
  for (const UnwindRow& r : alone->rows) {
    const UnwindRow* m = row_at(merged->rows, r.pc);
    ASSERT_NE(m, nullptr);
    if (r.cfa != CfaRule::kNone) {
      EXPECT_TRUE(m->same_rule(r)) << std::hex << r.pc;
    }
  }
}

// The split debug file is found by build-id under a debug root, and by .gnu_debuglink next to
// the binary; its .debug_frame gives the same table as the unsplit binary's own.
TEST(UnwindTable, SeparateDebugFileByBuildIdAndDebuglink) {
  namespace fs = std::filesystem;
  auto split = read_unwind_source(progs("unwind_chain_split"));
  auto whole = read_unwind_source(progs("unwind_chain_dwarfonly"));
  ASSERT_TRUE(split.ok() && whole.ok());
  EXPECT_TRUE(split->eh_frame.empty());
  EXPECT_TRUE(split->debug_frame.empty());
  ASSERT_GT(split->build_id.size(), 2u);
  EXPECT_EQ(split->build_id, whole->build_id);
  EXPECT_FALSE(build_file_table(*split, "t").ok());  // nothing of its own

  fs::path root = fs::temp_directory_path() / ("kscope-unwind-dbg-" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / ".build-id" / split->build_id.substr(0, 2));
  fs::path by_id =
      root / ".build-id" / split->build_id.substr(0, 2) / (split->build_id.substr(2) + ".debug");
  fs::copy_file(progs("unwind_chain_split.debug"), by_id);
  EXPECT_EQ(find_debug_file(*split, progs("unwind_chain_split"), {"/nonexistent"}), "");
  std::string found = find_debug_file(*split, progs("unwind_chain_split"), {root.string()});
  EXPECT_EQ(found, by_id.string());
  auto debug = read_unwind_source(found);
  ASSERT_TRUE(debug.ok());
  auto from_debug = build_file_table(*split, "t", &*debug);
  auto own = build_file_table(*whole, "t");
  ASSERT_TRUE(from_debug.ok()) << from_debug.error().describe();
  ASSERT_TRUE(own.ok());
  ASSERT_EQ(from_debug->rows.size(), own->rows.size());
  for (size_t i = 0; i < own->rows.size(); ++i) {
    EXPECT_EQ(from_debug->rows[i].pc, own->rows[i].pc);
    EXPECT_EQ(from_debug->rows[i].kind, own->rows[i].kind);
    EXPECT_EQ(from_debug->rows[i].cfa_off, own->rows[i].cfa_off);
  }

  // .gnu_debuglink: a copy of the binary linking to "bin.debug" next to it.
  std::string objcopy = ::kscope::testing::find_tool("objcopy");
  ASSERT_FALSE(objcopy.empty()) << "objcopy (binutils) is needed";
  fs::path dir = root / "bin";
  fs::create_directories(dir);
  fs::copy_file(progs("unwind_chain_split"), dir / "prog");
  fs::copy_file(progs("unwind_chain_split.debug"), dir / "prog.debug");
  auto r = ::kscope::testing::run(
      {objcopy, "--add-gnu-debuglink=" + (dir / "prog.debug").string(), (dir / "prog").string()},
      60);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto linked = read_unwind_source((dir / "prog").string());
  ASSERT_TRUE(linked.ok());
  EXPECT_EQ(linked->debuglink, "prog.debug");
  EXPECT_EQ(find_debug_file(*linked, (dir / "prog").string(), {"/nonexistent"}),
            (dir / "prog.debug").string());
  // Without a build-id to compare, the link's CRC decides: a changed debug file is not it.
  linked->build_id.clear();
  EXPECT_EQ(find_debug_file(*linked, (dir / "prog").string(), {"/nonexistent"}),
            (dir / "prog.debug").string());
  {
    std::ofstream append(dir / "prog.debug", std::ios::app | std::ios::binary);
    append << "changed";
  }
  EXPECT_EQ(find_debug_file(*linked, (dir / "prog").string(), {"/nonexistent"}), "");
  fs::remove_all(root);
}

TEST(UnwindTable, StrippedProgramKeepsItsTable) {
  auto full = read_unwind_source(progs("unwind_chain"));
  auto stripped = read_unwind_source(progs("unwind_chain_stripped"));
  ASSERT_TRUE(full.ok() && stripped.ok());
  EXPECT_EQ(full->eh_frame, stripped->eh_frame);
  EXPECT_FALSE(stripped->build_id.empty());
  EXPECT_EQ(full->build_id, stripped->build_id);
}

TEST(UnwindTable, PackedRowsKeepTheRules) {
  auto source = read_unwind_source("/lib/x86_64-linux-gnu/libc.so.6");
  ASSERT_TRUE(source.ok());
  auto table = build_file_table(*source, "libc");
  ASSERT_TRUE(table.ok()) << table.error().describe();
  auto decoded = decode_eh_frame(source->eh_frame, source->eh_frame_vaddr);
  ASSERT_TRUE(decoded.ok());
  ASSERT_EQ(table->rows.size(), decoded->rows.size());
  for (size_t i = 0; i < decoded->rows.size(); ++i) {
    const UnwindRow& r = decoded->rows[i];
    const kscope_unwind_row& p = table->rows[i];
    ASSERT_EQ(p.pc, r.pc);
    uint8_t cfa = p.kind & KSCOPE_UNWIND_CFA_MASK;
    if (cfa == KSCOPE_CFA_UNSUPPORTED && r.cfa != CfaRule::kUnsupported) {
      EXPECT_GT(table->rows_did_not_fit, 0u);  // only when a number did not fit
      continue;
    }
    ASSERT_EQ(cfa, static_cast<uint8_t>(r.cfa)) << std::hex << r.pc;
    if (r.cfa == CfaRule::kRsp || r.cfa == CfaRule::kRbp || r.cfa == CfaRule::kRbx) {
      ASSERT_EQ(p.cfa_off, r.cfa_offset);
    }
    ASSERT_EQ((p.kind & KSCOPE_UNWIND_RA_UNDEFINED) != 0, r.ra_undefined);
    if (r.cfa == CfaRule::kPlt) {
      ASSERT_EQ(p.aux, r.plt_threshold);
      continue;
    }
    uint8_t rbp = (p.kind & KSCOPE_UNWIND_RBP_MASK) >> KSCOPE_UNWIND_RBP_SHIFT;
    if (r.rbp == RbpRule::kOffset && rbp == KSCOPE_RBP_OFFSET) {
      ASSERT_EQ(-8 * static_cast<int>(KSCOPE_UNWIND_RBP_SLOT(p.aux)), r.rbp_offset);
    }
    // rbx: its slot when saved at CFA - 8..112, unknown when saved elsewhere, never wrong.
    uint8_t rbx = KSCOPE_UNWIND_RBX_SLOT(p.aux);
    if (r.rbx == RbpRule::kUnchanged) {
      ASSERT_EQ(rbx, KSCOPE_UNWIND_RBX_UNCHANGED);
    }
    if (r.rbx == RbpRule::kUnknown) {
      ASSERT_EQ(rbx, KSCOPE_UNWIND_RBX_UNKNOWN);
    }
    if (r.rbx == RbpRule::kOffset && rbx != KSCOPE_UNWIND_RBX_UNKNOWN) {
      ASSERT_EQ(-8 * static_cast<int>(rbx), r.rbx_offset) << std::hex << r.pc;
    }
    if (r.rbx == RbpRule::kOffset && r.rbx_offset < 0 && r.rbx_offset >= -112 &&
        r.rbx_offset % 8 == 0) {
      ASSERT_NE(rbx, KSCOPE_UNWIND_RBX_UNKNOWN) << std::hex << r.pc;
    }
  }
}

// The row index (the walker's first lookup, bpf/unwind.bpf.h kscope_unwind_find_row): for any
// file pc, the row a full binary search finds (the last row whose pc <= fpc) lies in the range
// the pc's bucket gives, [lo - 1, hi), and a pc before the first row has none. Checked at every
// row's pc and its neighbours and at random pcs, on real tables and on made-up ones.
void expect_index_bounds_the_search(const std::vector<kscope_unwind_row>& rows,
                                    const std::string& what) {
  RowIndex index = build_row_index(rows);
  if (rows.size() < 2 * RowIndex::kRowsPerBucket) {
    EXPECT_TRUE(index.buckets.empty()) << what;
    return;
  }
  ASSERT_FALSE(index.buckets.empty()) << what;
  EXPECT_LE(index.buckets.size(), std::max<size_t>(1, rows.size() / RowIndex::kRowsPerBucket))
      << what;
  EXPECT_EQ(index.base, rows.front().pc) << what;
  EXPECT_EQ(index.buckets.front().lo, 0u) << what;
  EXPECT_EQ(index.buckets.back().hi, rows.size()) << what;
  auto check = [&](uint64_t fpc64) {
    if (fpc64 > 0xffffffffull) return;
    uint32_t fpc = static_cast<uint32_t>(fpc64);
    auto ub = std::upper_bound(rows.begin(), rows.end(), fpc,
                               [](uint32_t v, const kscope_unwind_row& r) { return v < r.pc; });
    if (fpc < index.base) {
      ASSERT_TRUE(ub == rows.begin()) << what << std::hex << " fpc " << fpc;
      return;
    }
    ASSERT_TRUE(ub != rows.begin()) << what;
    size_t want = static_cast<size_t>(ub - rows.begin()) - 1;
    uint64_t k = static_cast<uint64_t>(fpc - index.base) >> index.shift;
    k = std::min<uint64_t>(k, index.buckets.size() - 1);
    const kscope_unwind_index_entry& e = index.buckets[k];
    ASSERT_LE(e.lo, e.hi) << what;
    // Rows before lo have pc <= fpc, rows from hi on have pc > fpc: the answer is in [lo-1, hi).
    ASSERT_LE(e.lo, want + 1) << what << std::hex << " fpc " << fpc;
    ASSERT_LT(want, e.hi) << what << std::hex << " fpc " << fpc;
  };
  for (const kscope_unwind_row& r : rows) {
    check(r.pc);
    check(uint64_t{r.pc} + 1);
    if (r.pc > 0) check(uint64_t{r.pc} - 1);
  }
  std::mt19937 rng(42);
  uint64_t lo = rows.front().pc > 100 ? rows.front().pc - 100 : 0;
  uint64_t hi = uint64_t{rows.back().pc} + 100;
  std::uniform_int_distribution<uint64_t> pick(lo, hi);
  for (int i = 0; i < 20000; ++i) check(pick(rng));
}

TEST(UnwindTable, RowIndexBoundsTheSearch) {
  for (const std::string& path :
       {std::string("/lib/x86_64-linux-gnu/libc.so.6"), std::string("/lib64/ld-linux-x86-64.so.2"),
        std::string(KSCOPE_BINARY), progs("unwind_chain")}) {
    auto source = read_unwind_source(path);
    ASSERT_TRUE(source.ok()) << path;
    auto table = build_file_table(*source, path);
    ASSERT_TRUE(table.ok()) << path;
    expect_index_bounds_the_search(table->rows, path);
  }
  // Made-up tables: dense, sparse with a huge gap, up to the top of the 32-bit space, small.
  auto rows_at = [](std::vector<uint64_t> pcs) {
    std::vector<kscope_unwind_row> rows;
    for (uint64_t pc : pcs) rows.push_back({static_cast<uint32_t>(pc), 8, KSCOPE_CFA_RSP, 0});
    return rows;
  };
  std::vector<uint64_t> dense, gap, top, small;
  for (uint64_t i = 0; i < 1000; ++i) dense.push_back(0x1000 + i);
  for (uint64_t i = 0; i < 100; ++i) gap.push_back(i < 50 ? 0x400000 + 16 * i : 0x7f000000 + i);
  for (uint64_t i = 0; i < 64; ++i) top.push_back(0xffffffffull - 63 + i);
  for (uint64_t i = 0; i < 15; ++i) small.push_back(0x2000 + 32 * i);
  expect_index_bounds_the_search(rows_at(dense), "dense");
  expect_index_bounds_the_search(rows_at(gap), "gap");
  expect_index_bounds_the_search(rows_at(top), "top");
  expect_index_bounds_the_search(rows_at(small), "small");
  std::vector<uint64_t> unsorted = dense;
  std::swap(unsorted[3], unsorted[700]);
  EXPECT_TRUE(build_row_index(rows_at(unsorted)).buckets.empty()) << "not sorted: no index";
}

TEST(UnwindTable, LoadBiasOfPieAndNonPie) {
  auto pie = read_unwind_source(progs("unwind_chain"));
  auto nopie = read_unwind_source(progs("unwind_chain_nopie"));
  ASSERT_TRUE(pie.ok() && nopie.ok());
  // The executable segment of a PIE at 0x555555554000 + its page offset.
  for (const LoadSegment& s : pie->loads) {
    if (!s.executable) continue;
    uint64_t map_offset = s.offset & ~0xfffull;
    uint64_t map_start = 0x555555554000ull + (s.vaddr & ~0xfffull);
    auto bias = load_bias(pie->loads, map_start, map_offset);
    ASSERT_TRUE(bias.ok());
    EXPECT_EQ(*bias, 0x555555554000ull);
  }
  for (const LoadSegment& s : nopie->loads) {
    if (!s.executable) continue;
    auto bias = load_bias(nopie->loads, s.vaddr & ~0xfffull, s.offset & ~0xfffull);
    ASSERT_TRUE(bias.ok());
    EXPECT_EQ(*bias, 0u);  // non-PIE: mapped at its link-time address
  }
  EXPECT_FALSE(load_bias(pie->loads, 0x1000, 1ull << 40).ok());
}

// Hostile input: truncations and byte flips of a real .eh_frame never crash or read out of
// bounds (run under KSCOPE_SANITIZE=ON for the proof) and never produce unsorted rows.
TEST(UnwindTable, MalformedSectionsAreSurvived) {
  auto source = read_unwind_source(progs("unwind_chain"));
  ASSERT_TRUE(source.ok());
  std::vector<uint8_t> bytes = source->eh_frame;
  ASSERT_FALSE(bytes.empty());
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    std::vector<uint8_t> part(bytes.begin(), bytes.begin() + static_cast<long>(cut));
    auto t = decode_eh_frame(part, source->eh_frame_vaddr);
    if (t.ok()) {
      EXPECT_TRUE(
          std::is_sorted(t->rows.begin(), t->rows.end(),
                         [](const UnwindRow& a, const UnwindRow& b) { return a.pc < b.pc; }));
    }
  }
  for (int round = 0; round < 2000; ++round) {
    std::vector<uint8_t> m = bytes;
    for (int k = 0; k < 4; ++k) m[next() % m.size()] = static_cast<uint8_t>(next());
    auto t = decode_eh_frame(m, source->eh_frame_vaddr);
    if (t.ok()) {
      EXPECT_TRUE(
          std::is_sorted(t->rows.begin(), t->rows.end(),
                         [](const UnwindRow& a, const UnwindRow& b) { return a.pc < b.pc; }));
    }
  }
  // Lengths that point past the end, a CIE pointer before the section, a huge augmentation.
  std::vector<uint8_t> evil = {0xf0, 0xff, 0xff, 0x7f, 0, 0, 0, 0};
  EXPECT_FALSE(decode_eh_frame(evil, 0).ok());
  std::vector<uint8_t> fde_bad_cie = {0x10, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
                                      0,    0, 0, 0, 0,    0,    0, 0, 0, 0, 0, 0};
  EXPECT_FALSE(decode_eh_frame(fde_bad_cie, 0).ok());
}

// One CIE and one FDE (pc 0x1000-0x1010), the CIE's program saying "caller's rbp at CFA +
// operand * data alignment" (DW_CFA_offset r6). A hostile CIE makes that product overflow (the
// input fuzz_eh_frame stopped on, tests/fuzz/corpus/eh_frame/regression_data_align_overflow):
// the program is refused and counted, never a rule with a wrapped offset.
std::vector<uint8_t> cie_and_fde(std::vector<uint8_t> data_align_sleb, uint8_t operand) {
  std::vector<uint8_t> cie = {0, 0, 0, 0, 1, 'z', 'R', 0, 1};  // CIE id 0, version 1, "zR", code 1
  cie.insert(cie.end(), data_align_sleb.begin(), data_align_sleb.end());
  for (uint8_t b : {16, 1, 0x03, 0x0c, 7, 8, 0x86}) cie.push_back(b);  // ra r16; udata4; cfa rsp+8
  cie.push_back(operand);
  while ((cie.size() + 4) % 4) cie.push_back(0);  // DW_CFA_nop
  std::vector<uint8_t> out = {static_cast<uint8_t>(cie.size()), 0, 0, 0};
  out.insert(out.end(), cie.begin(), cie.end());
  uint8_t back = static_cast<uint8_t>(out.size() + 4);  // FDE's CIE pointer: back to offset 0
  std::vector<uint8_t> fde = {back, 0, 0, 0, 0, 0x10, 0, 0, 0x10, 0, 0, 0, 0, 0x44};
  while ((fde.size() + 4) % 4) fde.push_back(0);
  out.push_back(static_cast<uint8_t>(fde.size()));
  for (int i = 0; i < 3; ++i) out.push_back(0);
  out.insert(out.end(), fde.begin(), fde.end());
  return out;
}

TEST(UnwindTable, DataAlignmentOverflowIsRefusedNotWrapped) {
  auto good = decode_eh_frame(cie_and_fde({0x78}, 2), 0);  // data alignment -8
  ASSERT_TRUE(good.ok()) << good.error().describe();
  const UnwindRow* row = row_at(good->rows, 0x1000);
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->rbp, RbpRule::kOffset);
  EXPECT_EQ(row->rbp_offset, -16);
  EXPECT_EQ(good->stats.bad_programs + good->stats.bad_entries, 0u);

  // -2^62 (SLEB128), times 8.
  std::vector<uint8_t> huge = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40};
  auto bad = decode_eh_frame(cie_and_fde(huge, 8), 0);
  if (bad.ok()) {
    EXPECT_GE(bad->stats.bad_programs + bad->stats.bad_entries, 1u);
    for (const UnwindRow& r : bad->rows) EXPECT_NE(r.rbp, RbpRule::kOffset) << r.rbp_offset;
  }
}

// The maps in memory, as the BPF walker would see them.
class FakeMaps : public UnwindMapWriter {
 public:
  std::map<uint32_t, kscope_unwind_row> rows;
  std::map<uint32_t, kscope_unwind_file> files;
  std::map<uint32_t, kscope_unwind_process> procs;
  Status write_rows(uint32_t first, std::span<const kscope_unwind_row> r) override {
    for (size_t i = 0; i < r.size(); ++i) rows[first + static_cast<uint32_t>(i)] = r[i];
    return {};
  }
  Status write_file(uint32_t id, const kscope_unwind_file& f) override {
    files[id] = f;
    return {};
  }
  Status write_process(uint32_t pid, const kscope_unwind_process& p) override {
    procs[pid] = p;
    return {};
  }
  void delete_process(uint32_t pid) override { procs.erase(pid); }
};

std::vector<ExecMapping> own_exec_mappings() {
  std::vector<ExecMapping> out;
  std::ifstream in("/proc/self/maps");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long s = 0, e = 0, off = 0, ino = 0;
    unsigned maj = 0, min = 0;
    char perms[8] = {};
    int n = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu %n", &s, &e, perms, &off, &maj,
                    &min, &ino, &n) < 7 ||
        perms[2] != 'x')
      continue;
    std::string path = n > 0 && static_cast<size_t>(n) <= line.size() ? line.substr(n) : "";
    out.push_back({s, e, off, ino, maj, min, path});
  }
  return out;
}

// Loading this test process's own mappings: each file's table once, and every mapping's load
// bias equal to what the dynamic loader says (dl_iterate_phdr's dlpi_addr).
TEST(UnwindTableLoader, OwnProcessMatchesTheDynamicLoader) {
  FakeMaps maps;
  TableLoader loader(maps, 1u << 22, 1024);
  auto mine = own_exec_mappings();
  ASSERT_FALSE(mine.empty());
  uint32_t pid = static_cast<uint32_t>(::getpid());
  ASSERT_TRUE(loader.load_process(pid, mine).ok());
  ASSERT_TRUE(loader.load_process(pid, mine).ok());  // again: nothing loaded twice
  ASSERT_EQ(maps.procs.count(pid), 1u);
  const kscope_unwind_process& p = maps.procs[pid];
  EXPECT_EQ(p.count, mine.size());
  for (uint32_t i = 1; i < p.count; ++i) EXPECT_LT(p.mappings[i - 1].start, p.mappings[i].start);
  std::map<std::string, uint64_t> loader_bias;  // path -> dlpi_addr
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* m = static_cast<std::map<std::string, uint64_t>*>(data);
        std::string name = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "";
        if (!name.empty()) {
          char real[4096];
          if (realpath(name.c_str(), real)) name = real;
        }
        (*m)[name] = info->dlpi_addr;
        return 0;
      },
      &loader_bias);
  char exe[4096] = {};
  ASSERT_GT(readlink("/proc/self/exe", exe, sizeof(exe) - 1), 0);
  size_t checked = 0;
  for (uint32_t i = 0; i < p.count; ++i) {
    const kscope_unwind_mapping& m = p.mappings[i];
    std::string path;
    for (const auto& e : mine)
      if (e.start == m.start) path = e.path;
    if (path.empty() || path[0] != '/') continue;
    char real[4096];
    std::string key = realpath(path.c_str(), real) ? real : path;
    auto it = loader_bias.find(key == exe ? "" : key);
    if (it == loader_bias.end()) continue;
    ASSERT_NE(m.file_id, KSCOPE_UNWIND_NO_FILE) << path;
    EXPECT_EQ(m.bias, it->second) << path;
    const kscope_unwind_file& f = maps.files.at(m.file_id);
    EXPECT_GT(f.row_count, 0u);
    ++checked;
  }
  EXPECT_GE(checked, 2u);  // the test binary and libc at least
  // Files are shared: as many file entries as distinct files, rows written once.
  std::set<uint32_t> ids;
  for (uint32_t i = 0; i < p.count; ++i)
    if (p.mappings[i].file_id != KSCOPE_UNWIND_NO_FILE) ids.insert(p.mappings[i].file_id);
  EXPECT_EQ(maps.files.size(), ids.size());
  EXPECT_EQ(loader.stats().files, ids.size());
  size_t rows = 0, index_entries = 0;
  for (const auto& [id, f] : maps.files) {
    rows += f.row_count;
    index_entries += f.index_count;
    // Each file's elements: its index right before its rows.
    if (f.index_count > 0) {
      EXPECT_EQ(f.index_first + f.index_count, f.first_row);
    }
  }
  EXPECT_EQ(maps.rows.size(), rows + index_entries);
  EXPECT_EQ(loader.stats().rows, rows);
  EXPECT_EQ(loader.stats().index_entries, index_entries);
  EXPECT_EQ(loader.stats().table_bytes(), (rows + index_entries) * sizeof(kscope_unwind_row));
  EXPECT_GT(index_entries, 0u);  // libc's table has thousands of rows: it has an index
  EXPECT_LE(index_entries, rows / RowIndex::kRowsPerBucket);
}

// A map too small for a file: the file is skipped and counted, its mapping has no table.
TEST(UnwindTableLoader, FullRowsMapIsCountedNotOverrun) {
  FakeMaps maps;
  TableLoader loader(maps, 1000, 1024);  // smaller than libc's table
  auto mine = own_exec_mappings();
  uint32_t pid = static_cast<uint32_t>(::getpid());
  ASSERT_TRUE(loader.load_process(pid, mine).ok());
  EXPECT_GT(loader.stats().files_no_room, 0u);
  EXPECT_LE(maps.rows.size(), 1000u);
  for (const auto& [key, row] : maps.rows) EXPECT_LT(key, 1000u);
}

// Tables of files no process maps any more give their rows to new files (after the reuse
// delay); a file still mapped never does; what cannot fit is counted.
TEST(UnwindTableLoader, RowsOfUnmappedFilesAreReused) {
  std::vector<ExecMapping> libc, ldso;
  for (const ExecMapping& m : own_exec_mappings()) {
    if (m.path.find("/libc.so") != std::string::npos) libc.push_back(m);
    if (m.path.find("/ld-linux") != std::string::npos) ldso.push_back(m);
  }
  ASSERT_FALSE(libc.empty());
  ASSERT_FALSE(ldso.empty());
  auto libc_table = build_file_table(*read_unwind_source(libc[0].path), "libc");
  auto ldso_table = build_file_table(*read_unwind_source(ldso[0].path), "ldso");
  ASSERT_TRUE(libc_table.ok() && ldso_table.ok());
  uint32_t libc_rows = static_cast<uint32_t>(libc_table->rows.size());
  uint32_t ldso_rows = static_cast<uint32_t>(ldso_table->rows.size());
  ASSERT_GT(libc_rows, ldso_rows);
  // A table takes its rows and its row index from the rows map.
  uint32_t libc_elements =
      libc_rows + static_cast<uint32_t>(build_row_index(libc_table->rows).buckets.size());
  uint32_t ldso_index = static_cast<uint32_t>(build_row_index(ldso_table->rows).buckets.size());
  uint32_t ldso_elements = ldso_rows + ldso_index;
  // Room for libc, not for libc and ld.so together.
  uint32_t capacity = libc_elements + ldso_elements / 2;

  {  // libc's process exits: ld.so takes its rows.
    FakeMaps maps;
    TableLoader loader(maps, capacity, 16);
    loader.set_reuse_delay(std::chrono::milliseconds(0));
    ASSERT_TRUE(loader.load_process(1, libc).ok());
    uint32_t libc_id = maps.procs[1].mappings[0].file_id;
    ASSERT_NE(libc_id, KSCOPE_UNWIND_NO_FILE);
    EXPECT_EQ(loader.stats().rows, libc_rows);
    loader.forget_process(1);
    EXPECT_EQ(maps.procs.count(1u), 0u);
    ASSERT_TRUE(loader.load_process(2, ldso).ok());
    EXPECT_EQ(loader.stats().files_no_room, 0u);
    EXPECT_EQ(loader.stats().files_freed, 1u);
    EXPECT_EQ(loader.stats().rows_freed, libc_rows);
    EXPECT_EQ(loader.stats().files, 1u);
    EXPECT_EQ(loader.stats().rows, ldso_rows);
    EXPECT_EQ(loader.stats().index_entries, ldso_index);
    EXPECT_EQ(loader.stats().table_bytes(), ldso_elements * sizeof(kscope_unwind_row));
    uint32_t id = maps.procs[2].mappings[0].file_id;
    ASSERT_NE(id, KSCOPE_UNWIND_NO_FILE);
    const kscope_unwind_file& f = maps.files.at(id);
    ASSERT_EQ(f.row_count, ldso_rows);
    EXPECT_LE(f.first_row + f.row_count, capacity);
    EXPECT_EQ(f.index_count, ldso_index);
    for (uint32_t i = 0; i < ldso_rows; ++i) {
      const kscope_unwind_row& r = maps.rows.at(f.first_row + i);
      ASSERT_EQ(r.pc, ldso_table->rows[i].pc) << i;
      ASSERT_EQ(r.kind, ldso_table->rows[i].kind) << i;
    }
    if (id != libc_id) {
      EXPECT_EQ(maps.files.at(libc_id).row_count, 0u);  // emptied
    }
    // libc again (a new process): it fits in what is left after ld.so only if freed again.
    loader.forget_process(2);
    ASSERT_TRUE(loader.load_process(3, libc).ok());
    EXPECT_NE(maps.procs[3].mappings[0].file_id, KSCOPE_UNWIND_NO_FILE);
    EXPECT_EQ(loader.stats().rows, libc_rows);
    EXPECT_EQ(loader.stats().files_freed, 2u);
  }
  {  // Not before the reuse delay: ld.so is skipped, counted.
    FakeMaps maps;
    TableLoader loader(maps, capacity, 16);
    loader.set_reuse_delay(std::chrono::hours(1));
    ASSERT_TRUE(loader.load_process(1, libc).ok());
    loader.forget_process(1);
    ASSERT_TRUE(loader.load_process(2, ldso).ok());
    EXPECT_EQ(loader.stats().files_no_room, 1u);
    EXPECT_EQ(loader.stats().files_freed, 0u);
    EXPECT_EQ(maps.procs[2].mappings[0].file_id, KSCOPE_UNWIND_NO_FILE);
    EXPECT_TRUE(loader.failures().count(ldso[0].path)) << "the reason is kept for -v";
  }
  {  // Still mapped: never freed.
    FakeMaps maps;
    TableLoader loader(maps, capacity, 16);
    loader.set_reuse_delay(std::chrono::milliseconds(0));
    ASSERT_TRUE(loader.load_process(1, libc).ok());
    ASSERT_TRUE(loader.load_process(2, ldso).ok());
    EXPECT_EQ(loader.stats().files_no_room, 1u);
    EXPECT_EQ(loader.stats().files_freed, 0u);
    uint32_t libc_id = maps.procs[1].mappings[0].file_id;
    EXPECT_EQ(maps.files.at(libc_id).row_count, libc_rows);
  }
}

}  // namespace
}  // namespace kscope::unwind
