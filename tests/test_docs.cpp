// The documentation must stay true to the code (issue: the study path). These tests fail when:
//  - docs/ops.md differs from what the registry generates (`simdiff op --list --markdown`);
//  - a link in docs/*.md names a file that does not exist, a heading that does not exist, or a
//    function (``[`name`](../path/file.cpp)``) that the file does not contain; a source path
//    written in backticks (`model/uvit.cpp`) does not exist;
//  - a `simdiff ...` command in a code block of docs/walkthrough.md uses an option that its
//    --help does not list, or an op that does not exist;
//  - the walkthrough's table of the training step's tensors (between the trace markers) is not
//    what `simdiff trace` computes for configs/demo.json, name by name and shape by shape;
//  - docs/backward.md leaves out a differentiable op or an op family's file.
// Each message says what to change. They read files and run the simdiff binary a few times
// (the trace once, at the demo config's batch: well under a second).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "kernels/families.h"
#include "kernels/registry.h"
#include "tests/run_simdiff.h"
#include "tests/temp_dir.h"
#include "tools/op_reference.h"

namespace fs = std::filesystem;

namespace {

const fs::path kRoot = SIMDIFF_SOURCE_DIR;
const char* const kDocs[] = {"docs/walkthrough.md", "docs/backward.md", "docs/ops.md", "docs/demo.md"};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> v;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) v.push_back(line);
  return v;
}

// GitHub's heading anchors: lower case, punctuation other than '-' and '_' dropped, spaces to '-'.
std::string slug(const std::string& heading) {
  std::string s;
  for (unsigned char c : heading) {
    if (std::isalnum(c) || c == '-' || c == '_') s += char(std::tolower(c));
    else if (c == ' ') s += '-';
  }
  return s;
}

std::set<std::string> anchors_of(const std::string& markdown) {
  std::set<std::string> a;
  bool fenced = false;
  for (const std::string& line : lines_of(markdown)) {
    if (line.rfind("```", 0) == 0) fenced = !fenced;
    if (fenced || line.empty() || line[0] != '#') continue;
    size_t text = line.find_first_not_of('#');
    if (text != std::string::npos) a.insert(slug(line.substr(text + 1)));
  }
  return a;
}

// Whole-word occurrence (identifiers: letters, digits, '_').
bool contains_word(const std::string& text, const std::string& word) {
  auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    bool start = at == 0 || !ident(text[at - 1]);
    bool end = at + word.size() >= text.size() || !ident(text[at + word.size()]);
    if (start && end) return true;
  }
  return false;
}

// The identifier parts of a linked name: "UViT::operator()" -> {"UViT", "operator"},
// "train_step" -> {"train_step"}, "--pad" -> {"pad"}.
std::vector<std::string> identifiers(const std::string& name) {
  std::vector<std::string> v;
  std::string cur;
  for (char c : name + " ") {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') cur += c;
    else if (!cur.empty()) v.push_back(std::exchange(cur, ""));
  }
  return v;
}

// Whether a --help text lists --name (not merely an option that starts with it).
bool has_option(const std::string& help, const std::string& name) {
  const std::string flag = "--" + name;
  for (size_t at = help.find(flag); at != std::string::npos; at = help.find(flag, at + 1)) {
    size_t end = at + flag.size();
    if (end == help.size() || !(std::isalnum(static_cast<unsigned char>(help[end])) || help[end] == '-'))
      return true;
  }
  return false;
}

// Everything outside fenced code blocks.
std::string prose_of(const std::string& markdown) {
  std::string out;
  bool fenced = false;
  for (const std::string& line : lines_of(markdown)) {
    if (line.rfind("```", 0) == 0) fenced = !fenced;
    else if (!fenced) out += line + "\n";
  }
  return out;
}

TEST(Docs, OpReferenceIsCurrent) {
  RunResult r = run_shell("'" + std::string(SIMDIFF_BINARY) + "' op --list --markdown");
  ASSERT_EQ(r.status, 0) << r.output;
  std::string want = r.output, have = slurp(kRoot / "docs/ops.md");
  if (want == have) return;
  std::vector<std::string> w = lines_of(want), h = lines_of(have);
  size_t i = 0;
  while (i < w.size() && i < h.size() && w[i] == h[i]) ++i;
  FAIL() << "docs/ops.md is not what the op registry generates (an OpDef's doc, inputs, "
            "attributes or outputs changed). Regenerate it from the repository root with\n  "
         << sd::kOpReferenceCommand << "\n(with your build directory for build/). First "
         << "difference at line " << i + 1 << ":\n  generated: "
         << (i < w.size() ? w[i] : "(end of file)")
         << "\n  docs/ops.md: " << (i < h.size() ? h[i] : "(end of file)");
}

TEST(Docs, LinksAndPathsNameWhatExists) {
  const std::regex link(R"(\[([^\]]*)\]\(([^)\s]+)\))");
  const std::regex code_name(R"(^`([^`]+)`$)");
  const std::regex source_path(
      R"(`((?:runtime|kernels|autograd|model|tools|tests|bench|configs|docs|fuzz)/[A-Za-z0-9_./-]*[A-Za-z0-9_])`)");
  for (const char* doc : kDocs) {
    fs::path path = kRoot / doc;
    ASSERT_TRUE(fs::exists(path)) << doc << " is missing";
    std::string text = slurp(path), prose = prose_of(text);
    int links = 0;
    for (std::sregex_iterator it(prose.begin(), prose.end(), link), end; it != end; ++it, ++links) {
      std::string label = (*it)[1], target = (*it)[2];
      if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) continue;
      std::string file = target.substr(0, target.find('#'));
      std::string anchor = target.find('#') == std::string::npos ? "" : target.substr(target.find('#') + 1);
      fs::path to = file.empty() ? path : (path.parent_path() / file).lexically_normal();
      ASSERT_TRUE(fs::exists(to)) << doc << ": link [" << label << "](" << target
                                  << ") names a file that does not exist: " << to;
      if (!anchor.empty()) {
        EXPECT_TRUE(anchors_of(slurp(to)).count(anchor))
            << doc << ": link [" << label << "](" << target << "): " << to.filename()
            << " has no heading with the anchor #" << anchor;
        continue;
      }
      std::smatch m;
      if (fs::is_regular_file(to) && to.extension() != ".md" && to.extension() != ".png" &&
          std::regex_match(label, m, code_name)) {
        std::string source = slurp(to);
        for (const std::string& id : identifiers(m[1]))
          EXPECT_TRUE(contains_word(source, id))
              << doc << ": link [" << label << "](" << target << "): " << to.lexically_relative(kRoot)
              << " does not contain '" << id << "' (renamed or moved? update the link)";
      }
    }
    EXPECT_GT(links, 0) << doc << " has no links: is the link pattern still [text](target)?";
    for (std::sregex_iterator it(prose.begin(), prose.end(), source_path), end; it != end; ++it)
      EXPECT_TRUE(fs::exists(kRoot / (*it)[1].str()))
          << doc << ": `" << (*it)[1] << "` does not exist in the repository";
  }
}

// Each `simdiff CMD ...` line in a code block: CMD exists, every --option is in CMD's --help,
// and `simdiff op NAME` names a registered op.
TEST(Docs, WalkthroughCommandsAreAccepted) {
  std::string text = slurp(kRoot / "docs/walkthrough.md");
  std::map<std::string, std::string> help;  // command -> its --help
  const std::regex option(R"((^|\s)--([a-z][a-z0-9-]*))");
  bool fenced = false;
  int commands = 0;
  for (const std::string& raw : lines_of(text)) {
    if (raw.rfind("```", 0) == 0) {
      fenced = !fenced;
      continue;
    }
    if (!fenced) continue;
    std::string line = raw.substr(std::min(raw.find_first_not_of(' '), raw.size()));
    for (const char* prefix : {"build/simdiff ", "simdiff "})
      if (line.rfind(prefix, 0) == 0) {
        std::istringstream words(line.substr(std::string(prefix).size()));
        std::string cmd, first;
        words >> cmd >> first;
        if (!help.count(cmd)) {
          RunResult r = run_simdiff(cmd + " --help");
          ASSERT_EQ(r.status, 0) << "docs/walkthrough.md: `simdiff " << cmd
                                 << " --help` failed (no such command?): " << r.output;
          help[cmd] = r.output;
        }
        ++commands;
        std::string rest = line.substr(std::string(prefix).size());
        for (std::sregex_iterator it(rest.begin(), rest.end(), option), end; it != end; ++it)
          EXPECT_TRUE(has_option(help[cmd], (*it)[2]))
              << "docs/walkthrough.md: `" << line << "`: simdiff " << cmd << " has no option --"
              << (*it)[2];
        if (cmd == "op" && !first.empty() && first.rfind("--", 0) != 0) {
          EXPECT_NE(sd::Registry::get().find(first), nullptr)
              << "docs/walkthrough.md: `" << line << "`: no op named '" << first << "'";
        }
        break;
      }
  }
  EXPECT_GE(commands, 5) << "docs/walkthrough.md: expected its commands in ``` blocks";
}

// Rows "| `name` | [shape] | ..." between <!-- trace:begin --> and <!-- trace:end -->.
std::vector<std::pair<std::string, std::string>> table_rows(const std::string& text,
                                                            const std::string& begin,
                                                            const std::string& end) {
  std::vector<std::pair<std::string, std::string>> rows;
  size_t b = text.find(begin), e = text.find(end);
  if (b == std::string::npos || e == std::string::npos || e < b) return rows;
  const std::regex row(R"(^\|\s*`([^`]+)`\s*\|\s*(\[[^\]]*\])\s*\|)");
  for (const std::string& line : lines_of(text.substr(b, e - b))) {
    std::smatch m;
    if (std::regex_search(line, m, row)) rows.push_back({m[1], m[2]});
  }
  return rows;
}

TEST(Docs, WalkthroughTraceTableIsTheModel) {
  TempDir tmp;
  RunResult r = run_simdiff("trace --config " + q((kRoot / "configs/demo.json").string()) +
                            " --out " + q(tmp / "t.safetensors") + " --markdown " + q(tmp / "t.md"),
                            "OMP_NUM_THREADS=1");
  ASSERT_EQ(r.status, 0) << r.output;
  auto computed = table_rows("<!-- trace:begin -->\n" + slurp(tmp / "t.md") + "<!-- trace:end -->",
                             "<!-- trace:begin -->", "<!-- trace:end -->");
  ASSERT_GT(computed.size(), 5u) << "simdiff trace --markdown printed no table rows";
  auto documented = table_rows(slurp(kRoot / "docs/walkthrough.md"), "<!-- trace:begin -->",
                               "<!-- trace:end -->");
  std::string want;
  for (auto& [name, shape] : computed) want += "| `" + name + "` | " + shape + " | ... |\n";
  EXPECT_EQ(documented, computed)
      << "docs/walkthrough.md: the table between <!-- trace:begin --> and <!-- trace:end --> "
         "must list the tensors `simdiff trace --config configs/demo.json --markdown -` prints, "
         "in its order and with its shapes; the model now gives\n"
      << want;
}

TEST(Docs, BackwardCoversEveryDifferentiableOpAndFamily) {
  std::string text = slurp(kRoot / "docs/backward.md");
  ASSERT_FALSE(text.empty()) << "docs/backward.md is missing";
  for (const sd::OpDef* d : sd::Registry::get().all()) {
    if (!d->differentiable()) continue;
    EXPECT_NE(text.find("`" + d->name + "`"), std::string::npos)
        << "docs/backward.md does not mention the differentiable op `" << d->name
        << "`: write its backward's math (and how it is checked) in its family's section";
  }
  std::vector<std::string> families;
#define SD_NAME(F) families.push_back(#F);
  SD_OP_FAMILIES(SD_NAME)
#undef SD_NAME
  for (const std::string& f : families)
    EXPECT_NE(text.find("(../kernels/cpu/" + f + ".cpp)"), std::string::npos)
        << "docs/backward.md does not link kernels/cpu/" << f << ".cpp";
}

}  // namespace
