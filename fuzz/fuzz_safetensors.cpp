// libFuzzer target: a safetensors file's bytes through load_safetensors (sizes, offsets, dtypes,
// header JSON). An sd::Error is a correct refusal; a crash, a sanitizer report (an out-of-bounds
// read of the data section, say) or any other exception is a bug. Every loaded tensor is read
// whole so that AddressSanitizer sees its bytes.
#include <cstdint>

#include "fuzz/fuzz_input.h"
#include "runtime/error.h"
#include "runtime/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    sd::SafeTensors st = sd::load_safetensors(fuzz_file(data, size));
    volatile uint8_t sink = 0;
    for (auto& [name, t] : st.tensors) {
      const uint8_t* p = static_cast<const uint8_t*>(t.raw());
      for (size_t i = 0; i < t.nbytes(); ++i) sink = sink ^ p[i];
    }
  } catch (const sd::Error&) {
  }
  return 0;
}
