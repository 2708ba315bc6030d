// SPDX-License-Identifier: MIT
// Helpers of the Asio adapter's system tests (test_asio*.cpp): targets in
// the test's private namespace, the engine's balance, a thread's CPU time.
#pragma once

#include "engine_test.hpp"
#include "netns.hpp"

#include <icmpengine/engine.hpp>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>

namespace icmpengine::testing {

/// Stops an io_context whose work made no progress for 20 s (a lost
/// wake-up or completion), so that the test fails instead of hanging:
/// `progress()` is any count that grows while things work. Checks once a
/// second on the context's thread; cancel() it when the work is done.
class watchdog {
  public:
    watchdog(asio::io_context& ctx, std::function<std::uint64_t()> progress)
        : m_ctx(ctx), m_timer(ctx), m_progress(std::move(progress)), m_last(m_progress()) {
        arm();
    }
    void cancel() { m_timer.cancel(); }
    /// True if it stopped the context.
    bool fired() const noexcept { return m_fired; }

  private:
    void arm() {
        m_timer.expires_after(std::chrono::seconds(1));
        m_timer.async_wait([this](const std::error_code& ec) {
            if (ec)
                return;
            const std::uint64_t now = m_progress();
            m_idle_seconds = now == m_last ? m_idle_seconds + 1 : 0;
            m_last = now;
            if (m_idle_seconds >= 20) {
                m_fired = true;
                m_ctx.stop();
                return;
            }
            arm();
        });
    }

    asio::io_context& m_ctx;
    asio::steady_timer m_timer;
    std::function<std::uint64_t()> m_progress;
    std::uint64_t m_last = 0;
    int m_idle_seconds = 0;
    bool m_fired = false;
};

} // namespace icmpengine::testing
