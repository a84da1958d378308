// guarded(fn): the benchmark function fn, with any exception it throws (out of memory, a CUDA
// error, an unsupported case) reported as that benchmark's error through SkipWithError. The run
// goes on with the next benchmark, and the JSON output stays valid, listing the error
// ("error_occurred", "error_message"; bench/compare.py prints it in the benchmark's row).
#pragma once
#include <benchmark/benchmark.h>

#include <exception>

namespace sd {

template <class F>
auto guarded(F fn) {
  return [fn](benchmark::State& st, auto&&... args) {
    try {
      fn(st, args...);
    } catch (const std::exception& e) {
      st.SkipWithError(e.what());
    }
  };
}

}  // namespace sd
