// SPDX-License-Identifier: MIT
#include "result_collector.hpp"

#include <catch2/catch.hpp>

#include <exception>

namespace icmpengine::testing {

void result_collector::start(engine& e, ip_address to, std::chrono::nanoseconds timeout,
                             std::uint64_t cookie, ping_options options) {
    struct span {
        int& depth;
        ~span() { --depth; }
    } inside{++m_starting};
    e.start_ping(to, timeout, *this, cookie, options);
}

task<void> result_collector::wait_for(std::size_t n) {
    co_await arrivals(n);
}

void result_collector::on_ping_result(std::uint64_t cookie, const ping_result& result) {
    m_inside_start += m_starting > 0 ? 1 : 0;
    m_outside_run += m_running ? 0 : 1;
    m_results[cookie].push_back(result);
    m_order.push_back(cookie);
    ++m_delivered;
    std::exception_ptr error;
    if (then) {
        try {
            then(cookie, result);
        } catch (...) {
            error = std::current_exception();
        }
    }
    if (m_waiter && m_delivered >= m_wanted)
        std::exchange(m_waiter, {}).resume();
    if (error)
        std::rethrow_exception(error);
}

void result_collector::require_each_once(std::uint64_t first, std::size_t n) const {
    CHECK(m_inside_start == 0);
    REQUIRE(m_delivered == n);
    REQUIRE(m_results.size() == n);
    for (const auto& [cookie, results] : m_results) {
        INFO("cookie " << cookie);
        REQUIRE(cookie - first < n);
        REQUIRE(results.size() == 1);
    }
}

const ping_result& result_collector::result(std::uint64_t cookie) const {
    INFO("cookie " << cookie);
    REQUIRE(m_results.count(cookie) == 1);
    return m_results.at(cookie).front();
}

} // namespace icmpengine::testing
