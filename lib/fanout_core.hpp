// SPDX-License-Identifier: MIT
// detail::fanout_core: the one fan-out machine. ping_all, engine_pool::ping_all,
// ping_fanout and ping_series are thin layers over it: they choose a plan
// and a sink, and read what the sink collected.
//
// The life of one ping of a fan-out, in order:
//   1. fill() (called by run() and after every result) takes the next ping
//      allowed now: first the targets not yet started (target_source), then
//      the scheduled later pings (a min-heap by due time), as long as the
//      window has room, the global pace allows and no stop was requested.
//   2. start() hands it to the engine (engine::start_ping, with the core as
//      the handler and (ping index, target index) packed into the cookie):
//      no coroutine frame per ping. The sink hears sent(); the target's next
//      ping goes on the heap at t0 + k * period, or the target is done
//      sending.
//   3. The engine delivers the result to on_ping_result(), from inside
//      engine::run(): the sink hears ended(); in single-shot mode a failed
//      attempt puts the next one on the heap, due at once; fill() refills
//      the window.
//   4. run()'s coroutine sleeps only while a ping waits for its time or
//      its turn of the pace; otherwise it waits for the results, and the
//      last one resumes it.
#pragma once

#include <icmpengine/engine.hpp>
#include <icmpengine/ip_address.hpp>
#include <icmpengine/ping_result.hpp>
#include <icmpengine/task.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <span>
#include <stop_token>
#include <utility>
#include <vector>

namespace icmpengine::detail {

inline constexpr std::size_t no_target = std::numeric_limits<std::size_t>::max();

/// What a fan-out does. Checked by the layer that builds it.
struct fanout_plan {
    /// Pings per target; 0: until stopped. With until_reply: the most attempts.
    std::uint64_t count = 1;
    /// Ping k of a target is due at t0 + k * period (t0: when ping 0 left).
    std::chrono::nanoseconds period{0};
    /// Without a pace, t0 is rounded up to a grid shared by every target
    /// (see aligned_start in fanout_core.cpp).
    bool align_starts = false;
    /// One attempt at a time, the next when the last ended without a reply.
    bool until_reply = false;
    /// With until_reply: attempt k waits series_options' attempt_timeout(k)
    /// (ping_series.hpp), from `timeout` (not `timeouts`).
    double backoff = 1.0;
    /// With until_reply: keep each target's attempt in flight, so that
    /// end_early() can cancel it (ping_fanout's late-reply credit).
    bool end_early = false;
    /// Every ping's timeout, or one per target if `timeouts` is not empty.
    std::chrono::nanoseconds timeout{0};
    std::span<const std::chrono::nanoseconds> timeouts{};
    ping_options ping{};
    /// Pings in flight at most (at least 1).
    std::uint32_t window = std::numeric_limits<std::uint32_t>::max();
    /// The least time between two sends of the fan-out; 0: unpaced.
    std::chrono::nanoseconds pace{0};
};

/// fping's backoff step: t * backoff in single precision (fping's `float
/// backoff`), truncated to whole nanoseconds, capped at max_ping_timeout.
std::chrono::nanoseconds backoff_step(std::chrono::nanoseconds t, double backoff) noexcept;

/// Where the pings of a fan-out report, from inside engine::run().
class fanout_sink {
  public:
    /// Ping k of `target` ended. May throw: the fan-out stops (see
    /// fanout_core).
    virtual void ended(std::size_t target, std::uint64_t k, const ping_result& result) = 0;
    /// Ping k of `target` was handed to the engine. May throw (the ping is
    /// out nonetheless and its result still comes to ended()). Only for a
    /// sink that follows_sends().
    virtual void sent(std::size_t /*target*/, std::uint64_t /*k*/) {}
    /// `target` sends no further ping: called once for every target that
    /// sent one, after its last sent() (targets never started get no call).
    /// Only for a sink that follows_sends().
    virtual void done_sending(std::size_t /*target*/) noexcept {}

    /// False for a sink that wants results only (ping_all's): the core then
    /// skips two calls per ping.
    bool follows_sends() const noexcept { return m_follows_sends; }

  protected:
    explicit fanout_sink(bool follows_sends) noexcept : m_follows_sends(follows_sends) {}
    fanout_sink(const fanout_sink&) = default;
    fanout_sink& operator=(const fanout_sink&) = default;
    ~fanout_sink() = default;

  private:
    bool m_follows_sends;
};

/// What the engines of a pool share: the next target nobody took yet, and
/// a stop that reaches every engine.
struct shared_targets {
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stopped{false};
};

/// Hands out the targets whose first ping is still to be sent, in order:
/// all of [0, count) for one engine, or blocks claimed from a cursor the
/// engines of a pool share (one atomic operation per block, not per ping).
class target_source {
  public:
    explicit target_source(std::size_t count) noexcept : m_end(count), m_count(count) {}
    target_source(shared_targets& shared, std::size_t count, std::size_t block) noexcept
        : m_count(count), m_block(block), m_shared(&shared) {}

    /// The next target, or no_target.
    std::size_t next() noexcept {
        if (m_stopped)
            return no_target;
        if (m_next == m_end) {
            if (m_shared == nullptr || m_shared->stopped.load(std::memory_order_relaxed))
                return no_target;
            const std::size_t first = m_shared->next.fetch_add(m_block, std::memory_order_relaxed);
            if (first >= m_count)
                return no_target;
            m_next = first;
            m_end = std::min(first + m_block, m_count);
        }
        return m_next++;
    }
    /// No target is handed out any more, here or (if shared) anywhere.
    void stop() noexcept {
        m_stopped = true;
        if (m_shared != nullptr)
            m_shared->stopped.store(true, std::memory_order_relaxed);
    }
    /// For a source of its own: the targets never handed out, [first, second).
    std::pair<std::size_t, std::size_t> remaining() const noexcept { return {m_next, m_end}; }

  private:
    std::size_t m_next = 0;
    std::size_t m_end = 0;
    std::size_t m_count = 0;
    std::size_t m_block = 0;
    shared_targets* m_shared = nullptr;
    bool m_stopped = false;
};

/// The first exception of a fan-out: the one of the lowest target index
/// when several (no_target for one that belongs to no target).
struct fanout_error {
    std::exception_ptr error;
    std::size_t target = no_target;

    void record(std::size_t t, std::exception_ptr e) noexcept {
        if (!error || t < target) {
            error = std::move(e);
            target = t;
        }
    }
};

/// Runs a plan over `targets` on one engine. The exception policy of every
/// fan-out (ping_series.hpp, "Callbacks"): an exception from the sink, or
/// one handed to fail(), stops the fan-out from starting new pings; every
/// ping in flight still ends and reaches the sink; then run() completes and
/// the layer above rethrows the exception of the lowest target index.
class fanout_core final : public ping_handler {
  public:
    /// `targets`, `plan.timeouts` and `sink` must outlive the core.
    fanout_core(std::span<const ip_address> targets, const fanout_plan& plan, fanout_sink& sink,
                target_source source);
    /// Destroyed with pings in flight (its task was destroyed early): the
    /// engine forgets them.
    ~fanout_core();
    fanout_core(const fanout_core&) = delete;
    fanout_core& operator=(const fanout_core&) = delete;

    /// The largest count a plan over `targets` targets may have (the
    /// cookie holds the ping index and the target index).
    static std::uint64_t max_count(std::size_t targets) noexcept;

    /// Runs the fan-out to its end on `eng`: every ping sent and ended, or
    /// after a stop, every ping in flight ended. Call once. Completes
    /// without throwing what the sink threw: see rethrow_if_failed().
    task<void> run(engine& eng);
    /// Rethrows the fan-out's first exception (see above), if any.
    void rethrow_if_failed() const;

    /// No ping is started any more. On the engine's thread; idempotent.
    void request_stop() noexcept;
    bool stop_requested() const noexcept { return m_stopping; }
    /// Records an exception that stops the fan-out (a callback of the
    /// layer above failed for `target`).
    void fail(std::size_t target, std::exception_ptr e) noexcept;
    const fanout_error& error() const noexcept { return m_error; }

    /// `target` sends no further attempt (plans with end_early; else a
    /// no-op): the one in flight, if any, is cancelled if `cancel` (its
    /// result comes as usual either way), and one waiting for its turn is
    /// dropped (the sink hears done_sending() now). Idempotent.
    void end_early(std::size_t target, bool cancel);
    /// With end_early (else false): the attempt of `target` in flight went
    /// out with this sequence number (the engine may have ended it already,
    /// its result not delivered yet).
    bool in_flight_with_sequence(std::size_t target, std::uint16_t sequence) const noexcept;
    /// The targets never started (after a stop), for a source of its own.
    std::pair<std::size_t, std::size_t> unstarted() const noexcept { return m_source.remaining(); }

    void on_ping_result(std::uint64_t cookie, const ping_result& result) override;

  private:
    using steady = std::chrono::steady_clock;
    struct next_ping {
        steady::time_point due;
        steady::time_point t0; ///< when the target's ping 0 counts from
        std::size_t target;
        std::uint64_t k;
    };

    static bool later(const next_ping& a, const next_ping& b) noexcept;
    void fill() noexcept;
    bool fill_one(steady::time_point& now);
    void start(std::size_t target, std::uint64_t k, steady::time_point t0);
    void schedule(const next_ping& p);
    std::chrono::nanoseconds timeout_for(std::size_t target, std::uint64_t k);
    bool ended_early(std::size_t target) const noexcept {
        return !m_ended_early.empty() && m_ended_early[target] != 0;
    }
    /// Tells the sink that `target` sends no more (if it follows sends).
    void done_sending(std::size_t target) noexcept {
        if (m_sink.follows_sends())
            m_sink.done_sending(target);
    }
    bool finished() const noexcept;
    /// When a ping could next be sent, if that is a matter of time.
    bool next_send_time(steady::time_point& at) const noexcept;
    /// After a result: resumes or wakes run()'s coroutine if it has to act.
    void poke() noexcept;
    auto wait_for_results() noexcept;

    std::span<const ip_address> m_targets;
    fanout_plan m_plan;
    fanout_sink& m_sink;
    target_source m_source;
    engine* m_eng = nullptr;
    unsigned m_target_bits;
    std::uint64_t m_target_mask;
    std::uint64_t m_count_limit;
    std::vector<next_ping> m_heap;
    /// With backoff: attempt k's timeout, up to where it stops growing.
    std::vector<std::chrono::nanoseconds> m_attempt_timeouts;
    /// With end_early: per target, its attempt in flight (handler null if
    /// none) and whether it ended early (its entry in m_heap, if any, is
    /// then skipped).
    std::vector<ping_ticket> m_tickets;
    std::vector<std::uint8_t> m_ended_early;
    std::size_t m_in_flight = 0;
    bool m_source_done = false;
    bool m_stopping = false;
    bool m_ran = false;
    steady::time_point m_pace_next{};
    // run()'s coroutine: waiting for results, or asleep until m_sleep_until
    // (m_wake ends the sleep early).
    std::coroutine_handle<> m_waiter;
    bool m_sleeping = false;
    steady::time_point m_sleep_until{};
    std::stop_source m_wake;
    fanout_error m_error;
};

} // namespace icmpengine::detail
