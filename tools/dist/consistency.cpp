#include "tools/dist/consistency.h"

#include <algorithm>
#include <cstring>

#include "runtime/json_text.h"
#include "tools/data/hash.h"

namespace sd::dist {

namespace {

// Appends "a.b (X on rank 0, Y on rank R)" for each leaf where `mine` differs from `root`.
void differences(const nlohmann::json& root, const nlohmann::json& mine, const std::string& path,
                 int rank, std::string& out) {
  if (root.is_object() && mine.is_object()) {
    for (auto& [k, v] : root.items())
      differences(v, mine.contains(k) ? mine[k] : nlohmann::json(), path + k + ".", rank, out);
    for (auto& [k, v] : mine.items())
      if (!root.contains(k)) differences(nlohmann::json(), v, path + k + ".", rank, out);
    return;
  }
  if (root == mine) return;
  out += (out.empty() ? "" : "; ") + path.substr(0, path.size() - 1) + " (" + brief(root) +
         " on rank 0, " + brief(mine) + " on rank " + std::to_string(rank) + ")";
}

// 1 MiB chunks hashed in parallel, combined in order.
uint64_t checksum(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  const size_t chunk = size_t(1) << 20, chunks = (n + chunk - 1) / chunk;
  std::vector<uint64_t> part(chunks);
#pragma omp parallel for
  for (size_t c = 0; c < chunks; ++c) {
    uint64_t acc = mix64(c);
    for (size_t i = c * chunk; i < std::min(n, (c + 1) * chunk); i += 8) {
      uint64_t w = 0;
      std::memcpy(&w, p + i, std::min<size_t>(8, n - i));
      acc = mix64(acc ^ w);
    }
    part[c] = acc;
  }
  uint64_t sum = mix64(n);
  for (uint64_t x : part) sum = hash_key(sum, x);
  return sum;
}

}  // namespace

void same_as_root(Comm& comm, const nlohmann::json& mine, const std::string& what) {
  if (comm.size() == 1) return;
  nlohmann::json root = nlohmann::json::parse(comm.broadcast(mine.dump()));
  comm.agree([&] {
    std::string diff;
    differences(root, mine, "", comm.rank(), diff);
    SD_CHECK(diff.empty(), what, ": ", diff);
  });
}

nlohmann::json data_fingerprint(const Dataset& data) {
  std::vector<float> img(size_t(data.channels()) * data.resolution() * data.resolution());
  uint64_t h = 0;
  for (int64_t i : {int64_t(0), data.size() / 2, data.size() - 1}) {
    int32_t label = 0;
    data.get(i, img.data(), &label);
    h = hash_key(hash_key(h, uint64_t(label)), checksum(img.data(), img.size() * sizeof(float)));
  }
  char hex[20];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  return {{"images", data.size()}, {"classes", data.class_names()}, {"checksum", hex}};
}

int differs_from_root(Comm& comm, const Tensor& t) {
  if (comm.size() == 1) return -1;
  Tensor h = t.is_cpu() ? t : t.to(Device::CPU);
  std::vector<uint64_t> all =
      comm.allgather(checksum(h.raw(), h.nbytes()), "comparing the weights");
  for (int r = 1; r < comm.size(); ++r)
    if (all[size_t(r)] != all[0]) return r;
  return -1;
}

}  // namespace sd::dist
