// The op reference (docs/ops.md), generated from the op registry: every op's description,
// inputs, attributes with defaults, outputs, its family (the file with its CPU reference and
// backward) and how it maps to PyTorch. `simdiff op --list --markdown` prints it and
// tests/test_docs.cpp checks that docs/ops.md is the same, byte for byte.
#pragma once
#include <string>

namespace sd {

// The command that regenerates docs/ops.md, for messages.
inline constexpr const char* kOpReferenceCommand = "build/simdiff op --list --markdown > docs/ops.md";

std::string op_reference_markdown();

}  // namespace sd
