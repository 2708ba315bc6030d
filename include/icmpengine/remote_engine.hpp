// SPDX-License-Identifier: MIT
// icmpengine::remote_engine: a thread-safe handle to an engine, for asking
// it for pings (or any work) from other threads.
#pragma once

#include <icmpengine/export.hpp>
#include <icmpengine/ip_address.hpp>
#include <icmpengine/ping_result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>

namespace icmpengine {

class engine;
struct ping_options;

namespace detail {
class remote_queue;
} // namespace detail

/// A copyable handle to one engine that any thread may use: work posted
/// through it runs on the engine's thread, inside the engine's run() or
/// poll(), in the order it was posted (per posting thread). From
/// engine::remote().
///
///     icmpengine::remote_engine remote = eng.remote(); // on the engine's thread
///     std::thread worker([remote] {
///         remote.ping(icmpengine::ip_address::parse("::1"), 1s,
///                     [](const icmpengine::ping_result& r) { /* on the engine's thread */ });
///     });
///
/// Posting is a mutex-guarded queue and, when the queue was empty, one
/// eventfd write that wakes the engine (a multishot poll in its ring, so a
/// run() blocked in io_uring_enter wakes too). A handle that outlives its
/// engine, or an engine that was stopped, refuses work with errc::stopped:
/// it never touches the engine's memory once the engine is gone.
class ICMPENGINE_API remote_engine {
  public:
    /// A handle to no engine: every call returns errc::stopped.
    remote_engine() noexcept = default;

    /// Runs `work(engine)` on the engine's thread. Returns errc::stopped
    /// (and drops `work`) once the engine was stopped or destroyed. Work
    /// queued when the engine stops still runs, inside stop(): pings it
    /// starts end as `cancelled`. An exception `work` throws is rethrown by
    /// the engine's run() or poll(), as a spawned task's is.
    std::error_code post(std::function<void(engine&)> work) const;

    /// One ping, started on the engine's thread; `done(result)` is called
    /// there, exactly once, if this returns no error. Throws
    /// std::invalid_argument at the call for arguments engine::ping refuses.
    std::error_code ping(ip_address to, std::chrono::nanoseconds timeout,
                         std::function<void(const ping_result&)> done) const;
    std::error_code ping(ip_address to, std::chrono::nanoseconds timeout,
                         std::function<void(const ping_result&)> done,
                         const ping_options& options) const;

    /// False once the engine was stopped or destroyed (or for a default
    /// handle). True is only a hint: the engine may stop right after.
    bool alive() const noexcept;

  private:
    friend class engine;
    explicit remote_engine(std::shared_ptr<detail::remote_queue> queue) noexcept
        : m_queue(std::move(queue)) {}

    std::shared_ptr<detail::remote_queue> m_queue;
};

} // namespace icmpengine
