// SPDX-License-Identifier: MIT
// Seeds for randomised tests: printed, and replayable.
#pragma once

#include <cstdint>

namespace icmpengine::testing {

/// The seed for a randomised test: ICMPENGINE_SEED from the environment if
/// set, else a fresh random one. Printed to stdout either way, with the
/// command line that replays it.
std::uint64_t test_seed(const char* test_name);

} // namespace icmpengine::testing
