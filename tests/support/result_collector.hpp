// SPDX-License-Identifier: MIT
// A ping_handler for tests of engine::start_ping.
#pragma once

#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <utility>
#include <vector>

namespace icmpengine::testing {

/// Keeps every result by cookie and checks where it is delivered from:
/// start() and run() mark their spans, and results that arrive inside
/// start_ping or outside run() are counted. `then` runs after each result is
/// recorded; it may start further pings or throw. A coroutine waits for
/// results with `co_await arrivals(n)`: the n-th result resumes it from
/// inside the handler, and so from inside run().
class result_collector final : public ping_handler {
  public:
    result_collector() = default;
    result_collector(const result_collector&) = delete;
    result_collector& operator=(const result_collector&) = delete;
    ~result_collector() = default;

    void start(engine& e, ip_address to, std::chrono::nanoseconds timeout, std::uint64_t cookie,
               ping_options options = {});

    template <typename T>
    T run(engine& e, task<T> t) {
        struct span {
            bool& flag;
            ~span() { flag = false; }
        } inside{m_running = true};
        return e.run(std::move(t));
    }

    struct arrival {
        result_collector& c;
        std::size_t n;
        bool await_ready() const noexcept { return c.m_delivered >= n; }
        void await_suspend(std::coroutine_handle<> h) noexcept {
            c.m_waiter = h;
            c.m_wanted = n;
        }
        void await_resume() const noexcept {}
    };
    /// Resumes the awaiting coroutine once `n` results have arrived in all.
    arrival arrivals(std::size_t n) noexcept { return {*this, n}; }
    task<void> wait_for(std::size_t n);

    void on_ping_result(std::uint64_t cookie, const ping_result& result) override;

    /// Each cookie in [first, first + n) got exactly one result, nothing else
    /// arrived, and nothing arrived inside start_ping.
    void require_each_once(std::uint64_t first, std::size_t n) const;

    const ping_result& result(std::uint64_t cookie) const;
    std::size_t delivered() const noexcept { return m_delivered; }
    std::size_t outside_run() const noexcept { return m_outside_run; }
    /// Cookies in the order their results arrived.
    const std::vector<std::uint64_t>& order() const noexcept { return m_order; }

    std::function<void(std::uint64_t, const ping_result&)> then;

  private:
    std::map<std::uint64_t, std::vector<ping_result>> m_results;
    std::vector<std::uint64_t> m_order;
    std::size_t m_delivered = 0;
    std::size_t m_inside_start = 0;
    std::size_t m_outside_run = 0;
    int m_starting = 0;
    bool m_running = false;
    std::coroutine_handle<> m_waiter;
    std::size_t m_wanted = 0;
};

} // namespace icmpengine::testing
