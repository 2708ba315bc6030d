// SPDX-License-Identifier: MIT
#include "sim_targets.hpp"

#include "seed.hpp"

#include <array>
#include <utility>

namespace icmpengine::testing {

ip_address sim_target(std::uint32_t i, bool v6) {
    if (!v6)
        return ip_address::from_v4(0xc6120000u + 1 + i); // 198.18.0.1 upward
    std::array<std::uint8_t, 16> b{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x05};
    b[14] = static_cast<std::uint8_t>((i + 1) >> 8);
    b[15] = static_cast<std::uint8_t>(i + 1);
    return ip_address::from_v6_bytes(b);
}

sim_address to_sim(const ip_address& a) {
    return sim_address::parse(a.to_string());
}

simulator_config simulated(std::string_view profile, const char* test_name) {
    simulator_config c;
    c.seed = test_seed(test_name);
    c.profile = profile::parse(profile);
    return c;
}

std::vector<request_record> requests_to(const network_simulator& sim, const char* target) {
    std::vector<request_record> out;
    const sim_address to = sim_address::parse(target);
    for (request_record& r : sim.requests())
        if (r.target == to)
            out.push_back(std::move(r));
    return out;
}

} // namespace icmpengine::testing
