// JSON from untrusted text (config files, --attrs, checkpoint metadata, safetensors headers,
// metrics lines) and JSON values in error messages.
//
// nlohmann's parser itself is iterative, but printing a value recurses once per nesting level,
// so a value nested 60000 deep overflows the stack when an error message prints it. Parsing
// here therefore bounds the nesting, and messages print values through brief(), which stops
// after a few dozen characters. Duplicate keys, which nlohmann resolves silently (last one
// wins), are refused at every level.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sd {

// Parses `text`; errors are sd::Error starting with `source` and naming the byte offset (plus
// `byte_base`, for text that starts inside a file) or the key path ("model.dropout").
nlohmann::json parse_json(std::string_view text, const std::string& source, int max_depth = 32,
                          uint64_t byte_base = 0);

// A JSON value for a message: compact, at most about `max_chars` characters ("..." marks a cut).
// Safe on values of any size or depth.
std::string brief(const nlohmann::json& v, size_t max_chars = 60);

}  // namespace sd
