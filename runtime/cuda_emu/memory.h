// The device allocations the emulator knows (memory.cpp).
#pragma once
#include <cstddef>

namespace sd_emu {

// True when [p, p + bytes) lies inside one live device allocation (bytes may be 0).
bool in_device_memory(const void* p, size_t bytes);

}  // namespace sd_emu
