// SPDX-License-Identifier: MIT
#include "engine_test.hpp"

#include <catch2/catch.hpp>

#include "netns.hpp"

#include <ctime>
#include <utility>

namespace icmpengine::testing {

void require_balanced(const engine_stats& s) {
    INFO("sent " << s.sent << " replies " << s.replies << " timeouts " << s.timeouts
                 << " icmp_errors " << s.icmp_errors << " send_errors " << s.send_errors
                 << " cancelled " << s.cancelled << " in_flight " << s.in_flight << " waiting "
                 << s.waiting);
    REQUIRE(s.sent ==
            s.replies + s.timeouts + s.icmp_errors + s.send_errors + s.cancelled + s.in_flight);
    REQUIRE(s.waiting == 0);
}

task<std::vector<ping_result>> ping_each(engine& eng, std::vector<ip_address> targets,
                                         std::chrono::nanoseconds timeout, ping_options options) {
    std::vector<task<ping_result>> pings;
    pings.reserve(targets.size());
    for (const auto& t : targets)
        pings.push_back(eng.ping(t, timeout, options));
    co_return co_await when_all(std::move(pings));
}

task<timed_result> timed_ping(engine& eng, ip_address to, std::chrono::nanoseconds timeout) {
    timed_result t;
    t.started = std::chrono::steady_clock::now();
    t.result = co_await eng.ping(to, timeout);
    t.ended = std::chrono::steady_clock::now();
    co_return t;
}

ip_address silent_target() {
    static const bool routed = [] {
        run("ip route replace 198.18.99.0/24 dev lo");
        return true;
    }();
    (void)routed;
    return ip_address::parse("198.18.99.1");
}

double thread_cpu_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

} // namespace icmpengine::testing
