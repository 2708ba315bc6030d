// SPDX-License-Identifier: MIT
// The engine's side of the network simulator (netsim.hpp): its targets as
// icmpengine addresses, a seeded configuration, and the record per target.
#pragma once

#include "netsim.hpp"

#include <icmpengine/ip_address.hpp>

#include <cstdint>
#include <string_view>
#include <vector>

namespace icmpengine::testing {

/// Target i of the simulator's default prefixes: 198.18.0.1 upward, or
/// 2001:db8:5::1 upward.
ip_address sim_target(std::uint32_t i, bool v6);

/// The same address as the simulator writes it down.
sim_address to_sim(const ip_address& a);

/// A simulator configuration with `profile`, seeded by test_seed(test_name)
/// (printed, replayable with ICMPENGINE_SEED).
simulator_config simulated(std::string_view profile, const char* test_name);

/// The simulator's record of the requests to one target, in arrival order.
std::vector<request_record> requests_to(const network_simulator& sim, const char* target);

} // namespace icmpengine::testing
