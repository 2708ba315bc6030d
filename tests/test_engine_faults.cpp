// SPDX-License-Identifier: MIT
// System tests of icmpengine::engine: injected resource faults
// (detail::fault_plan) are survived and every ping still ends exactly once.
// support/system_main.cpp has moved this process into a private network
// namespace: every packet here goes to loopback.
#include <catch2/catch.hpp>

#include "engine_core.hpp"
#include "engine_test.hpp"

#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <cstdint>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using namespace icmpengine;
using namespace icmpengine::testing;

TEST_CASE("injected resource faults are survived: each ping ends exactly once",
          "[engine][faults]") {
    using icmpengine::detail::engine_access;
    auto fan_out = [](engine& e, std::uint32_t n) {
        std::vector<ip_address> targets;
        for (std::uint32_t i = 0; i < n; ++i)
            targets.push_back(i % 4 == 3 ? addr("::1") : loopback_v4(i));
        auto results = e.run(ping_each(e, targets, 5s));
        std::size_t replies = 0;
        for (std::size_t i = 0; i < results.size(); ++i)
            replies += results[i].status == ping_status::reply && results[i].from == targets[i];
        return replies;
    };

    SECTION("a full submission queue is flushed and retried") {
        engine eng;
        auto& core = engine_access::core(eng);
        core.faults().sq_full = 50;
        CHECK(fan_out(eng, 2000) == 2000);
        CHECK(core.faults().sq_full == 0);
        CHECK(core.recoveries().sq_full >= 50);
        require_balanced(eng.stats());
    }
    SECTION("io_uring_enter failing with EBUSY (CQ overflow backlog) is retried") {
        engine eng;
        auto& core = engine_access::core(eng);
        core.faults().submit_busy = 20;
        CHECK(fan_out(eng, 2000) == 2000);
        CHECK(core.faults().submit_busy == 0);
        CHECK(core.recoveries().submit_retries >= 20);
        require_balanced(eng.stats());
    }
    SECTION("a real CQ overflow loses no completion") {
        engine eng({.queue_depth = 8, .send_batch = 8});
        auto& core = engine_access::core(eng);
        core.faults().skip_harvests = 200;
        CHECK(fan_out(eng, 3000) == 3000);
        CHECK(core.recoveries().cq_overflow >= 1);
        require_balanced(eng.stats());
    }
    SECTION("sends failing with EAGAIN and ENOBUFS are sent again") {
        engine eng;
        auto& core = engine_access::core(eng);
        // Faults hit SQEs in order, resends included: 25 + 25 fail the first
        // requests once and some of their resends once more; every ping
        // still gets through within its four attempts.
        core.faults().send_eagain = 25;
        core.faults().send_enobufs = 25;
        CHECK(fan_out(eng, 2000) == 2000);
        CHECK(core.faults().send_eagain == 0);
        CHECK(core.faults().send_enobufs == 0);
        CHECK(core.recoveries().send_retries == 50);
        const engine_stats s = eng.stats();
        CHECK(s.send_errors == 0);
        require_balanced(s);
    }
    SECTION("a send that keeps failing ends as send_error, once") {
        engine eng;
        auto& core = engine_access::core(eng);
        core.faults().send_enobufs = 4; // every attempt the engine makes
        const ping_result failed = eng.run(eng.ping(addr("127.0.0.1"), 2s));
        CHECK(failed.status == ping_status::send_error);
        CHECK(failed.error == std::errc::no_buffer_space);
        CHECK(eng.run(eng.ping(addr("127.0.0.2"), 2s)).status == ping_status::reply);
        const engine_stats s = eng.stats();
        CHECK(s.send_errors == 1);
        require_balanced(s);
    }
    SECTION("an empty buffer ring ends the receive with ENOBUFS; it is re-armed") {
        engine eng({.receive_buffers = 16});
        auto& core = engine_access::core(eng);
        core.faults().hold_receive_buffers = 16;
        CHECK(fan_out(eng, 2000) == 2000);
        CHECK(core.recoveries().receive_enobufs >= 1);
        CHECK(eng.stats().receive_overruns == 0);
        require_balanced(eng.stats());
    }
    SECTION("a receive ended by a socket error is re-armed") {
        engine eng;
        auto& core = engine_access::core(eng);
        core.faults().receive_error = 3;
        CHECK(fan_out(eng, 3000) == 3000);
        CHECK(core.faults().receive_error == 0);
        CHECK(core.recoveries().receive_errors >= 3);
        require_balanced(eng.stats());
    }
}
