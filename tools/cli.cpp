#include "tools/cli.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <sstream>

namespace sd::cli {
namespace {

std::string see_help(const std::string& cmd) { return "; see " + cmd + " --help"; }

// Edit distance, for "did you mean" on a mistyped option.
size_t distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// The closest option within two edits, else one that the typed name abbreviates.
std::string suggestion(const Command& cmd, const std::string& name) {
  const Option* best = nullptr;
  size_t best_d = 3;
  for (auto& o : cmd.options)
    if (size_t d = distance(name, o.name); d < best_d) best = &o, best_d = d;
  for (auto& o : cmd.options)
    if (!best && !name.empty() && o.name.rfind(name, 0) == 0) best = &o;
  return best ? " (did you mean --" + best->name + "?)" : "";
}

// "--inputs FILE" or "--list".
std::string spelled(const Option& o) {
  return "--" + o.name + (o.value.empty() ? "" : " " + o.value);
}

}  // namespace

void Args::check_declared(const std::string& name) const {
  SD_CHECK(declared_.count(name), "internal error: '", command_, "' looked up option --", name,
           " which it does not declare");
}

bool Args::has(const std::string& name) const {
  check_declared(name);
  return values_.count(name) || switches_.count(name);
}

bool Args::flag(const std::string& name) const {
  check_declared(name);
  return switches_.count(name) > 0;
}

const std::string& Args::get(const std::string& name) const {
  check_declared(name);
  auto it = values_.find(name);
  if (it == values_.end())
    throw UsageError("'" + command_ + "' needs option --" + name + see_help(command_));
  return it->second;
}

namespace {
// The whole of `s` as a T, or nothing.
template <class T>
std::optional<T> parse_whole(const std::string& s) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string range_text(double lo, double hi) {
  auto num = [](double x) {
    std::ostringstream os;
    os << x;
    return os.str();
  };
  if (std::isinf(lo) && std::isinf(hi)) return "";
  if (std::isinf(hi)) return " >= " + num(lo);
  if (std::isinf(lo)) return " <= " + num(hi);
  return " in [" + num(lo) + ", " + num(hi) + "]";
}
}  // namespace

int64_t Args::get_int(const std::string& name, int64_t lo, int64_t hi) const {
  const std::string& s = get(name);
  std::optional<int64_t> v = parse_whole<int64_t>(s);
  if (!v || *v < lo || *v > hi) {
    std::string range = lo == INT64_MIN && hi == INT64_MAX ? ""
                        : hi == INT64_MAX ? " >= " + std::to_string(lo)
                                          : " in " + std::to_string(lo) + ".." + std::to_string(hi);
    throw UsageError("option --" + name + " for '" + command_ + "' expected an integer" + range +
                     ", got '" + s + "'");
  }
  return *v;
}

double Args::get_double(const std::string& name, double lo, double hi) const {
  const std::string& s = get(name);
  std::optional<double> v = parse_whole<double>(s);
  if (!v || !std::isfinite(*v) || *v < lo || *v > hi)
    throw UsageError("option --" + name + " for '" + command_ + "' expected a finite number" +
                     range_text(lo, hi) + ", got '" + s + "'");
  return *v;
}

std::pair<double, double> Args::get_interval(const std::string& name) const {
  const std::string& s = get(name);
  size_t comma = s.find(',');
  std::optional<double> lo, hi;
  if (comma != std::string::npos) {
    lo = parse_whole<double>(s.substr(0, comma));
    hi = parse_whole<double>(s.substr(comma + 1));
  }
  if (!lo || !hi || !std::isfinite(*lo) || !std::isfinite(*hi) || *lo > *hi)
    throw UsageError("option --" + name + " for '" + command_ +
                     "' expected LO,HI: two finite numbers with LO <= HI, got '" + s + "'");
  return {*lo, *hi};
}

Args parse(const Command& cmd, int argc, char** argv) {
  Args a;
  a.command_ = cmd.name;
  for (auto& o : cmd.options) a.declared_.insert(o.name);
  auto usage = [&](const std::string& msg) { throw UsageError(msg + see_help(cmd.name)); };

  std::set<std::string> given;
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (only_positional || arg.empty() || arg[0] != '-' || arg == "-") {
      a.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      a.help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) usage("unknown option " + arg + " for '" + cmd.name + "'");
    std::string name = arg.substr(2), value;
    size_t eq = name.find('=');
    bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    auto it = std::find_if(cmd.options.begin(), cmd.options.end(),
                           [&](const Option& o) { return o.name == name; });
    if (it == cmd.options.end())
      usage("unknown option --" + name + " for '" + cmd.name + "'" + suggestion(cmd, name));
    const Option& o = *it;
    if (!given.insert(name).second) usage("option --" + name + " given twice");
    if (o.value.empty()) {
      if (inline_value) usage("option --" + name + " is a switch and takes no value");
      a.switches_.insert(name);
      continue;
    }
    if (!inline_value) {
      // "--inputs --out f" is a forgotten value, not a file named "--out".
      if (i + 1 >= argc || std::string(argv[i + 1]).rfind("--", 0) == 0)
        usage("option --" + name + " needs a value (" + o.value + ")");
      value = argv[++i];
    }
    a.values_[name] = value;
  }

  for (auto& o : cmd.options)
    if (!given.count(o.name) && !o.default_value.empty()) a.values_[o.name] = o.default_value;
  if (a.positional.size() > cmd.max_positional)
    usage("unexpected argument '" + a.positional[cmd.max_positional] + "' for '" + cmd.name + "'");
  if (!a.help)
    for (auto& o : cmd.options)
      if (o.required && !given.count(o.name))
        usage("'" + cmd.name + "' needs option " + spelled(o));
  return a;
}

std::string help_text(const Command& cmd) {
  std::string s = "usage: " + cmd.name;
  if (!cmd.positional.empty()) s += " " + cmd.positional;
  for (auto& o : cmd.options)
    if (o.required) s.append(" ").append(spelled(o));
  s += " [options]\n\n" + cmd.summary + "\n\noptions:\n";

  std::vector<std::pair<std::string, std::string>> rows;
  for (auto& o : cmd.options) {
    std::string text = o.help;
    if (o.required) text += " (required)";
    if (!o.default_value.empty()) text += " (default: " + o.default_value + ")";
    rows.emplace_back(spelled(o), text);
  }
  rows.emplace_back("-h, --help", "show this help");
  size_t width = 0;
  for (auto& r : rows) width = std::max(width, r.first.size());
  width = std::min<size_t>(width, 26);
  for (auto& [left, text] : rows) {
    s += "  " + left;
    if (left.size() > width) s += "\n  " + std::string(width, ' ');
    else s += std::string(width - left.size(), ' ');
    s += "  " + text + "\n";
  }
  if (!cmd.epilog.empty()) s += "\n" + cmd.epilog + (cmd.epilog.back() == '\n' ? "" : "\n");
  return s;
}

}  // namespace sd::cli
