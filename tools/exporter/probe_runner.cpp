// SPDX-License-Identifier: MIT
// probe_runner: the engines /probe pings with, and one probe's pings.
//
// One engine per TTL a query asks for (engine_config::ttl is per engine),
// created on first use and driven by icmpengine::boost_asio::driver from
// the HTTP server's executor, so that probes, HTTP and the engine share one
// thread. A probe is `count` pings, ping k sent at k * interval from the
// first, each its own task (the sends do not wait for replies), each
// waiting at most timeout - (count - 1) * interval: all of them end within
// the probe's budget. Probes never wait for each other.
#include "probe.hpp"

#include <icmpengine/boost_asio.hpp>
#include <icmpengine/when_all.hpp>

#include <optional>

namespace icmpengine_exporter {

struct probe_runner::impl {
    boost::asio::any_io_executor executor;
    ie::engine_config base;
    // Destroyed before its engine (the driver's rule): see ~probe_runner.
    struct driven_engine {
        std::unique_ptr<ie::engine> engine;
        std::optional<ie::boost_asio::driver> driver;
    };
    std::map<std::uint8_t, driven_engine> engines;
    bool stopped = false;
};

probe_runner::probe_runner(boost::asio::any_io_executor executor, ie::engine_config base)
    : m_impl(std::make_unique<impl>()) {
    m_impl->executor = std::move(executor);
    m_impl->base = std::move(base);
}

probe_runner::~probe_runner() {
    for (auto& [ttl, e] : m_impl->engines)
        e.driver.reset();
    m_impl->engines.clear(); // each engine's destructor cancels what is in flight
}

ie::engine& probe_runner::engine_for(std::uint8_t ttl) {
    auto [it, created] = m_impl->engines.try_emplace(ttl);
    if (created) {
        ie::engine_config config = m_impl->base;
        config.ttl = ttl;
        impl::driven_engine& e = it->second;
        try {
            e.engine = std::make_unique<ie::engine>(std::move(config));
            e.driver.emplace(m_impl->executor, *e.engine);
        } catch (...) {
            m_impl->engines.erase(it); // no io_uring: the next probe tries again
            throw;
        }
        if (m_impl->stopped)
            e.engine->stop(); // its pings end as cancelled at once
    }
    return *it->second.engine;
}

void probe_runner::stop() {
    m_impl->stopped = true;
    for (auto& [ttl, e] : m_impl->engines)
        e.engine->stop();
}

std::size_t probe_runner::engine_count() const noexcept {
    return m_impl->engines.size();
}

namespace {

/// Ping k of a probe: waits for its send time, then pings. nullopt if the
/// engine stopped before the send time (nothing was sent).
ie::task<std::optional<ie::ping_result>> scheduled_ping(ie::engine& eng, ie::ip_address to,
                                                        std::chrono::steady_clock::time_point at,
                                                        std::chrono::nanoseconds timeout,
                                                        ie::ping_options options) {
    if (at > std::chrono::steady_clock::now()) {
        const bool reached = co_await eng.sleep_until(at);
        if (!reached || eng.stopped())
            co_return std::nullopt;
    }
    co_return co_await eng.ping(to, timeout, options);
}

bool is_icmp_error(ie::ping_status s) {
    return s == ie::ping_status::unreachable || s == ie::ping_status::time_exceeded ||
           s == ie::ping_status::packet_too_big || s == ie::ping_status::parameter_problem;
}

} // namespace

ie::task<probe_result> probe_runner::run(ie::ip_address address, probe_request request) {
    ie::engine& eng = engine_for(request.ttl);
    const std::uint32_t count = std::max<std::uint32_t>(request.count, 1);
    const auto per_ping = request.timeout - (count - 1) * request.interval;
    ie::ping_options options;
    options.payload_size = request.size;
    ie::check_ping_arguments(address, per_ping, options); // parse_probe_query's promise

    const auto first = std::chrono::steady_clock::now();
    std::vector<ie::task<std::optional<ie::ping_result>>> pings;
    pings.reserve(count);
    for (std::uint32_t k = 0; k < count; ++k)
        pings.push_back(
            scheduled_ping(eng, address, first + k * request.interval, per_ping, options));
    const std::vector<std::optional<ie::ping_result>> results =
        co_await ie::when_all(std::move(pings));

    probe_result out;
    out.address = address;
    for (const std::optional<ie::ping_result>& r : results) {
        if (!r)
            continue;
        ++out.sent;
        if (r->status == ie::ping_status::reply) {
            ++out.received;
            out.rtts.push_back(r->rtt);
            out.reply_ttl = r->ttl;
        } else if (is_icmp_error(r->status)) {
            ++out.icmp_errors;
        } else if (r->status == ie::ping_status::send_error) {
            ++out.send_errors;
        }
    }
    co_return out;
}

} // namespace icmpengine_exporter
