// SPDX-License-Identifier: MIT
// The README's example: ping 60,000 targets (127.1.0.1 upward) once each,
// all at once, and count the replies. Run it inside a private network
// namespace (see README), e.g.
//     unshare -n sh -c 'ip link set lo up &&
//         sysctl -qw net.ipv4.ping_group_range="0 2147483647" &&
//         build/tools/fanout-example 60000'
#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    const std::uint32_t n = argc > 1 ? static_cast<std::uint32_t>(std::atoi(argv[1])) : 60'000;
    const auto start = std::chrono::steady_clock::now();

    icmpengine::engine engine;
    std::vector<icmpengine::task<icmpengine::ping_result>> pings;
    for (std::uint32_t i = 0; i < n; ++i)
        pings.push_back(engine.ping(icmpengine::ip_address::from_v4(0x7f010001 + i), 1s));
    std::vector<icmpengine::ping_result> results =
        engine.run(icmpengine::when_all(std::move(pings)));

    const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
    std::size_t replies = 0;
    for (const icmpengine::ping_result& r : results)
        replies += r.status == icmpengine::ping_status::reply;
    std::printf("%zu pings, %zu replies in %.1f ms\n", results.size(), replies, took.count());
    return replies == n ? 0 : 1;
}
