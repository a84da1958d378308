// The rest of the runtime API: errors (with the emulator's explanation of the last failure),
// streams, the device and its attributes, per-kernel attributes, and the emulator's options.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>

#include "cuda_runtime.h"

namespace sd_emu {
namespace {

constexpr int kSmCount = 132;                     // an H100 SXM
constexpr int kDefaultDynamicSmem = 48 * 1024;    // without opting in
constexpr int kMaxDynamicSmem = 227 * 1024;       // sm_90's per-block limit

std::mutex g_mutex;
std::set<cudaStream_t> g_streams;
std::map<const void*, int> g_smem_limit;  // kernel -> opted-in dynamic shared memory bytes
thread_local cudaError_t t_last = cudaSuccess;
thread_local std::string t_detail;  // why the last call failed, in words

const char* error_name(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

}  // namespace

// Every failing API call goes through here: the code is what cudaGetLastError returns next, the
// detail what cudaGetErrorString adds to the code's name.
cudaError_t fail_api(cudaError_t e, const std::string& detail) {
  t_last = e;
  t_detail = detail;
  return e;
}

bool stream_ok(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return s == nullptr || g_streams.count(s);
}

int dynamic_smem_limit(const void* fn) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_smem_limit.find(fn);
  return it == g_smem_limit.end() ? kDefaultDynamicSmem : std::max(kDefaultDynamicSmem, it->second);
}

Options& options() {
  static Options o = [] {
    auto env = [](const char* name) { return std::getenv(name); };
    Options r;
    r.seed = env("SIMDIFF_EMU_SEED") ? std::strtoull(env("SIMDIFF_EMU_SEED"), nullptr, 10)
                                     : std::random_device{}();
    r.random_order = env("SIMDIFF_EMU_RANDOM_ORDER") && std::string(env("SIMDIFF_EMU_RANDOM_ORDER")) == "1";
    r.tf32 = !(env("SIMDIFF_EMU_TF32") && std::string(env("SIMDIFF_EMU_TF32")) == "0");
    return r;
  }();
  return o;
}

}  // namespace sd_emu

using sd_emu::fail_api;

const char* cudaGetErrorName(cudaError_t e) { return sd_emu::error_name(e); }

// The code's meaning plus, for the most recent failure with this code, the emulator's detail.
const char* cudaGetErrorString(cudaError_t e) {
  static thread_local std::string s;
  s = e == cudaSuccess ? "no error" : "emulator: ";
  if (e != cudaSuccess) s += e == sd_emu::t_last && !sd_emu::t_detail.empty() ? sd_emu::t_detail : sd_emu::error_name(e);
  return s.c_str();
}

cudaError_t cudaGetLastError() {
  cudaError_t e = sd_emu::t_last;
  sd_emu::t_last = cudaSuccess;
  return e;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  if (!s) return fail_api(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: null result pointer");
  *s = reinterpret_cast<cudaStream_t>(new char);  // a unique handle
  std::lock_guard<std::mutex> lock(sd_emu::g_mutex);
  sd_emu::g_streams.insert(*s);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (!sd_emu::stream_ok(s))
    return fail_api(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: not a live stream");
  return cudaSuccess;  // work ran at the call
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(sd_emu::g_mutex);
  if (!s || !sd_emu::g_streams.erase(s))
    return fail_api(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: not a live stream");
  delete reinterpret_cast<char*>(s);
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int device) {
  if (device != 0) return fail_api(cudaErrorInvalidValue, "cudaDeviceGetAttribute: no device " + std::to_string(device));
  if (attr != cudaDevAttrMultiProcessorCount)
    return fail_api(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute not emulated");
  *v = sd_emu::kSmCount;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* fn, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
    return fail_api(cudaErrorInvalidValue, "cudaFuncSetAttribute: attribute not emulated");
  if (value < 0 || value > sd_emu::kMaxDynamicSmem)
    return fail_api(cudaErrorInvalidValue,
                    "cudaFuncSetAttribute: " + std::to_string(value) +
                        " bytes of dynamic shared memory, an sm_90 block can have at most " +
                        std::to_string(sd_emu::kMaxDynamicSmem));
  std::lock_guard<std::mutex> lock(sd_emu::g_mutex);
  sd_emu::g_smem_limit[fn] = value;
  return cudaSuccess;
}
