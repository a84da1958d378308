// Where a tensor's bytes live. A CPU-only build still knows the name "cuda" so that asking for
// it gives a clear error instead of a link failure.
#pragma once
#include <cstdint>
#include <string>

#include "runtime/error.h"

namespace sd {

enum class Device : uint8_t { CPU, CUDA };

inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

inline Device device_from_name(const std::string& s) {
  if (s == "cpu") return Device::CPU;
  if (s == "cuda") return Device::CUDA;
  fail("unknown device '", s, "' (expected cpu or cuda)");
}

// True when this build has the CUDA backend and a device is present.
bool cuda_available();

}  // namespace sd
