// SPDX-License-Identifier: MIT
// Helpers for system tests that drive an icmpengine::engine: targets, the
// balance every test checks at the end, and small coroutines that ping.
#pragma once

#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <vector>

namespace icmpengine::testing {

inline ip_address addr(const char* text) {
    return ip_address::parse(text);
}

/// 127.1.0.1 upward: distinct loopback targets (all of 127/8 is local).
inline ip_address loopback_v4(std::uint32_t i) {
    return ip_address::from_v4(0x7f010001u + i);
}

/// The engine's counters balance: every accepted ping ended exactly once or
/// is still in flight, and none waits for a slot.
void require_balanced(const engine_stats& s);

/// A target that never answers: 198.18.99.0/24 routed into lo, where
/// nothing is local and nothing forwards (RFC 2544's benchmarking range,
/// inside the test's namespace only).
ip_address silent_target();

/// CPU time of the calling thread, in milliseconds.
double thread_cpu_ms();

/// Pings every target once, all at once, each through engine::ping (one
/// coroutine per ping); the results in the order of `targets`.
task<std::vector<ping_result>> ping_each(engine& eng, std::vector<ip_address> targets,
                                         std::chrono::nanoseconds timeout,
                                         ping_options options = {});

/// A ping together with when it started and ended, as seen by the coroutine
/// that awaited it.
struct timed_result {
    ping_result result;
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point ended;
};

task<timed_result> timed_ping(engine& eng, ip_address to, std::chrono::nanoseconds timeout);

/// An awaitable nobody ever resumes (for run()'s deadlock detection).
struct never {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const noexcept {}
};

/// Resumes the caller once `done()` holds, checking after each turn of the
/// engine's loop (a sleep of `poll`); false if `limit` passed first. For
/// waiting on what another thread or the kernel does (the simulator's
/// record, packets arriving) without guessing how long it takes: `limit`
/// is only there so that a broken test fails instead of hanging.
template <typename Done>
task<bool> wait_until(engine& eng, Done done, std::chrono::nanoseconds limit,
                      std::chrono::nanoseconds poll = std::chrono::milliseconds(1)) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= give_up)
            co_return false;
        // Not `while (co_await ...)`: see tests/gcc12_co_await_condition.cpp.
        const bool slept = co_await eng.sleep_for(poll);
        if (!slept)
            co_return done();
    }
    co_return true;
}

} // namespace icmpengine::testing
