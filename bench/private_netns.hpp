// SPDX-License-Identifier: MIT
// Private network namespaces for the benchmarks: every packet a benchmark
// sends stays inside namespaces it created itself. The namespace handling is
// the system tests' (tests/support/netns.hpp); this adds how a benchmark
// gives up when it cannot have one.
#pragma once

#include "netns.hpp"

#include <string>

namespace icmpengine::bench {

using testing::enter_private_netns;
using testing::peer_netns;
using testing::write_sysctl;

/// Runs a shell command; throws std::runtime_error naming it if it fails.
inline void run_command(const std::string& command) {
    testing::run(command);
}

/// The benchmarks' exit when enter_private_netns() failed: prints why to
/// stderr and exits 77 (meson's "skipped"), or 1 under CI=true, where a
/// benchmark that cannot run must fail. Never falls back to the host
/// namespace.
[[noreturn]] void exit_without_netns(const char* program, const std::string& why);

} // namespace icmpengine::bench
