// Checks that the ranks of a data-parallel job hold the same thing: what they were asked to do,
// what they found (device, data), and, every few steps, their weights.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "tools/data/dataset.h"
#include "tools/dist/comm.h"

namespace sd::dist {

// Fails (agreed) on every rank when any rank's `mine` differs from rank 0's, naming each leaf
// that differs: "what: config.train.lr (0.001 on rank 0, 0.002 on rank 1)".
void same_as_root(Comm& comm, const nlohmann::json& mine, const std::string& what);

// The data as the ranks can compare it: its size, its classes and a checksum of a few images.
nlohmann::json data_fingerprint(const Dataset& data);

// The lowest rank whose `t` is not bitwise rank 0's (by a 64-bit checksum of its bytes), or -1.
int differs_from_root(Comm& comm, const Tensor& t);

}  // namespace sd::dist
