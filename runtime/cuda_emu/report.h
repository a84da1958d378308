// What the emulator says when a check fails: who (thread and block), where (file:line of the
// kernel code, from the call site or by symbolising a return address) and in which kernel.
#pragma once
#include <string>
#include <vector>

#include "state.h"

namespace sd_emu {

// Records a problem of the running launch; the first becomes its error. `fatal`: the block
// cannot go on (the scheduler stops it).
void problem(const std::string& what, bool fatal);

std::string site_str(Site s);                 // "kernels/cuda/attention.cu:44"
std::string thread_str(const Thread& t);      // "thread (5,0,0) of block (1,0,0)"
std::string lanes_str(const std::vector<int>& ids);  // "0-31, 40"
// "kernels/cuda/attention.cu:118 (in lane_dot<2>)" for a return address into kernel code, via
// AddressSanitizer's symboliser (llvm-symbolizer); the raw address when that is unavailable.
std::string code_at(const void* return_address);
// The symbolised name of a function ("attn_fwd_f32<32>"), or "" when unavailable.
std::string function_name(const void* fn);

}  // namespace sd_emu
