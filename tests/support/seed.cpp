// SPDX-License-Identifier: MIT
#include "seed.hpp"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace icmpengine::testing {

std::uint64_t test_seed(const char* test_name) {
    std::uint64_t seed = 0;
    if (const char* env = std::getenv("ICMPENGINE_SEED"); env != nullptr && *env != '\0') {
        seed = std::stoull(env, nullptr, 0);
    } else {
        std::random_device rd;
        seed = (std::uint64_t{rd()} << 32) | rd();
    }
    std::printf("[%s] seed: %llu (replay with ICMPENGINE_SEED=%llu)\n", test_name,
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    return seed;
}

} // namespace icmpengine::testing
