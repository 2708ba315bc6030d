// SPDX-License-Identifier: MIT
// icmpengine::engine: the public facade over detail::engine_core (see
// engine_core.hpp for the layout of the engine and the life of one ping).
#include "engine_core.hpp"
#include "ping_arguments.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <stdexcept>

namespace icmpengine {

namespace {

// Deadlines further out than ten years are taken as ten years: far from
// int64 overflow, and no process waits that long.
std::int64_t mono_deadline_after(std::chrono::nanoseconds remaining) noexcept {
    const std::int64_t now = detail::clock_ns(CLOCK_MONOTONIC);
    return now + std::clamp<std::int64_t>(remaining.count(), 0, detail::max_timeout_ns);
}

} // namespace

engine::engine(engine_config config)
    : m_core(std::make_unique<detail::engine_core>(*this, std::move(config))) {}

engine::~engine() = default;

task<ping_result> engine::ping(ip_address to, std::chrono::nanoseconds timeout,
                               ping_options options) {
    // Checked here, at the call, rather than when the lazy task first runs.
    detail::check_ping_arguments(to, timeout, options);
    return m_core->ping(to, timeout, options);
}

ping_ticket engine::start_ping(ip_address to, std::chrono::nanoseconds timeout,
                               ping_handler& handler, std::uint64_t cookie, ping_options options) {
    detail::check_ping_arguments(to, timeout, options);
    return m_core->start(
        detail::ping_request{to, timeout.count(), options.payload_size, &handler, cookie, nullptr});
}

bool engine::cancel(const ping_ticket& ticket) {
    return m_core->cancel(ticket);
}

void engine::forget(const ping_handler& handler) noexcept {
    m_core->forget(handler);
}

void engine::drive(std::coroutine_handle<> root) {
    m_core->drive(root);
}

bool engine::poll() {
    return m_core->poll();
}

int engine::native_handle() {
    return m_core->native_handle();
}

remote_engine engine::remote() {
    return remote_engine(m_core->remote());
}

task<bool> engine::sleep_until(std::chrono::steady_clock::time_point deadline,
                               std::stop_token stop) {
    // Measured against steady_clock::now() rather than assuming its epoch is
    // CLOCK_MONOTONIC's (it is, in libstdc++ and libc++). deadline - now
    // cannot overflow once deadline > now, even for time_point::max().
    const auto now = std::chrono::steady_clock::now();
    const auto remaining =
        deadline > now ? std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now)
                       : std::chrono::nanoseconds{0};
    return m_core->sleep(mono_deadline_after(remaining), std::move(stop));
}

task<bool> engine::sleep_for(std::chrono::nanoseconds duration, std::stop_token stop) {
    return m_core->sleep(mono_deadline_after(duration), std::move(stop));
}

void engine::spawn(task<void> t) {
    m_core->spawn(std::move(t));
}

std::error_code engine::open(ip_family family) {
    return m_core->open(family);
}

void engine::stop() {
    m_core->stop();
}

bool engine::stopped() const noexcept {
    return m_core->stopped();
}

engine_stats engine::stats() const noexcept {
    return m_core->stats();
}

const engine_config& engine::config() const noexcept {
    return m_core->config();
}

std::optional<socket_mode> engine::socket_kind(ip_family family) const noexcept {
    return m_core->socket_kind(family);
}

} // namespace icmpengine
