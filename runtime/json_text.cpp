#include "runtime/json_text.h"

#include <unordered_set>
#include <vector>

#include "runtime/error.h"

namespace sd {

using nlohmann::json;

namespace {

// nlohmann's what() starts with "[json.exception.parse_error.101] "; the rest is the reason.
std::string reason(const std::exception& e) {
  std::string s = e.what();
  size_t p = s.find("] ");
  return p == std::string::npos ? s : s.substr(p + 2);
}

std::string join_path(const std::vector<std::string>& path) {
  std::string s;
  for (auto& k : path) s += (s.empty() || k.front() == '[' ? "" : ".") + k;
  return s;
}

// Appends v to out until out reaches `limit` characters; recursion is bounded by the limit,
// since every level writes at least one character.
void put(const json& v, std::string& out, size_t limit) {
  if (out.size() >= limit) return;
  if (v.is_object() || v.is_array()) {
    out += v.is_object() ? '{' : '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end() && out.size() < limit; ++it) {
      if (!first) out += ',';
      first = false;
      if (v.is_object()) {
        put(json(it.key()), out, limit);
        out += ':';
      }
      put(*it, out, limit);
    }
    out += v.is_object() ? '}' : ']';
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    out += json(s.substr(0, limit)).dump(-1, ' ', false, json::error_handler_t::replace);
  } else {
    out += v.dump();
  }
}

}  // namespace

json parse_json(std::string_view text, const std::string& source, int max_depth,
                uint64_t byte_base) {
  // Keys seen in each open object, by nesting depth; the key path for messages.
  std::vector<std::unordered_set<std::string>> keys;
  std::vector<std::string> path;
  auto on_event = [&](int depth, json::parse_event_t ev, json& parsed) {
    using E = json::parse_event_t;
    if (ev == E::object_start || ev == E::array_start) {
      if (depth >= max_depth)
        fail(source, ": JSON nested deeper than ", max_depth, " levels",
             path.empty() ? "" : " under '" + join_path(path) + "'");
      if (ev == E::object_start) {
        if (keys.size() <= size_t(depth)) keys.resize(size_t(depth) + 1);
        keys[size_t(depth)].clear();
      }
      path.resize(size_t(depth));
      if (ev == E::array_start && depth > 0) path.push_back("[]");
    } else if (ev == E::key) {
      const std::string& k = parsed.get_ref<const std::string&>();
      path.resize(size_t(depth - 1));
      path.push_back(k);
      if (!keys[size_t(depth - 1)].insert(k).second)
        fail(source, ": key '", join_path(path), "' appears twice");
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), on_event);
  } catch (const json::parse_error& e) {
    fail(source, ": not valid JSON: error at byte ", byte_base + (e.byte > 0 ? e.byte - 1 : 0),
         ": ", reason(e));
  } catch (const json::exception& e) {  // a number out of range: "number overflow parsing '1e400'"
    fail(source, ": ", path.empty() ? "" : "'" + join_path(path) + "': ", reason(e));
  }
}

std::string brief(const json& v, size_t max_chars) {
  std::string s;
  put(v, s, max_chars);
  if (s.size() > max_chars) s = s.substr(0, max_chars) + "...";
  return s;
}

}  // namespace sd
