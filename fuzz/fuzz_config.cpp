// libFuzzer target: a config file's bytes through the JSON reader (depth bound, duplicate keys,
// number overflow) and the config parser (types, ranges). An sd::Error is a correct refusal;
// a crash, a sanitizer report or any other exception is a bug. An accepted config must survive
// the round trip through to_json that checkpoints depend on.
#include <cstdint>
#include <string_view>

#include "model/config.h"
#include "runtime/error.h"
#include "runtime/json_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    nlohmann::json j = sd::parse_json(text, "fuzz.json");
    (void)sd::brief(j);  // what error messages print
    sd::Config c = sd::Config::from_json(j, "fuzz.json");
    sd::Config back = sd::Config::from_json(nlohmann::json::parse(c.to_json().dump()), "round trip");
    if (!sd::Config::changes(c, back).empty()) __builtin_trap();
  } catch (const sd::Error&) {
  }
  return 0;
}
