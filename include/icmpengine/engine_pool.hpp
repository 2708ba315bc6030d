// SPDX-License-Identifier: MIT
// icmpengine::ping_all and icmpengine::engine_pool: one ping to each of many
// targets, on one engine or spread over one engine per core.
#pragma once

#include <icmpengine/engine.hpp>
#include <icmpengine/export.hpp>
#include <icmpengine/ip_address.hpp>
#include <icmpengine/limits.hpp>
#include <icmpengine/ping_result.hpp>
#include <icmpengine/task.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

namespace icmpengine {

/// How ping_all pings its targets.
struct ping_all_options {
    /// Every ping's timeout: positive, at most max_ping_timeout.
    std::chrono::nanoseconds timeout = std::chrono::seconds(1);
    /// Per-target timeouts instead: if not empty, timeouts[i] is the timeout
    /// of the ping to targets[i] (one per target; `timeout` is then unused).
    /// The span must outlive the fan-out.
    std::span<const std::chrono::nanoseconds> timeouts{};
    ping_options ping{};
    /// Pings in flight at most, per engine (at least 1). A fan-out has no
    /// coroutine frame per ping (engine::start_ping), so what it holds grows
    /// with the window, not with the number of targets: the engine's state,
    /// about 100 bytes per ping in flight. For slow or lossy paths raise it
    /// to about rate x RTT, or pings spend the time waiting for a free
    /// place. Setting engine_config::max_in_flight to the window keeps the
    /// engine's slot table that small too (it otherwise grows to 65,536
    /// slots before it reuses one). bench/README.md has measurements.
    std::uint32_t window = 256;
};

/// One ping to every target on `eng`, at most options.window at a time, in
/// input order; results[i] receives the result for targets[i]. Run it with
/// engine::run (or co_await it inside another task on the same engine):
///
///     icmpengine::engine eng;
///     std::vector<icmpengine::ping_result> results(targets.size());
///     eng.run(icmpengine::ping_all(eng, targets, results, {.timeout = 1s}));
///
/// `targets` and `results` must outlive the task. Throws
/// std::invalid_argument at the call, naming the value, if results.size()
/// != targets.size() (or options.timeouts.size(), when given), the window
/// is 0, or a timeout or the payload size is out of range (limits.hpp).
/// Exceptions met while it runs: see "Callbacks" in ping_series.hpp. After
/// engine::stop() it starts no further ping: those in flight end as
/// `cancelled`, and so do the results of the targets it had not started.
/// For a callback per result, or series, use ping_fanout (ping_series.hpp).
ICMPENGINE_API task<void> ping_all(engine& eng, std::span<const ip_address> targets,
                                   std::span<ping_result> results,
                                   const ping_all_options& options = {});

struct engine_pool_config {
    /// How many engines, each on its own thread; 0 picks one per CPU this
    /// process may run on (sched_getaffinity(2)).
    unsigned engines = 0;
    /// The configuration of every engine. Each has its own ring and sockets;
    /// with datagram sockets the kernel gives each socket only the replies
    /// to its own requests, so engines never see each other's traffic (raw
    /// sockets work too, but every engine then reads every reply).
    engine_config engine{};
    /// Pins engine i's thread to the i-th CPU of the affinity mask (modulo
    /// its size), so that two engines never share a core. Off by default: on
    /// a quiet machine it changes nothing measurable (the scheduler spreads
    /// the threads anyway), and on a busy one it keeps a thread from moving
    /// off a CPU that something else took.
    bool pin_threads = false;
};

/// N engines on N threads that spread a fan-out over every core:
///
///     icmpengine::engine_pool pool;                  // one engine per core
///     std::vector<icmpengine::ping_result> results =
///         pool.ping_all(targets, {.timeout = 1s});   // results[i] is for targets[i]
///
/// An engine must be created, driven and destroyed on one thread (its ring
/// is IORING_SETUP_SINGLE_ISSUER), so each engine is constructed inside its
/// thread and lives there until the pool is destroyed. Targets are handed out
/// in blocks from one shared cursor, so a slow engine takes fewer of them.
///
/// The calling thread blocks until every ping has ended. Calls on one pool
/// are serialised; the pool itself may be used from any thread.
class ICMPENGINE_API engine_pool {
  public:
    /// Starts the threads and constructs their engines. Throws what an
    /// engine's constructor throws (std::invalid_argument for a bad setting)
    /// and std::system_error if a thread cannot be started.
    explicit engine_pool(engine_pool_config config = {});
    /// Stops every engine (cancelling nothing: no call is running then) and
    /// joins the threads.
    ~engine_pool();
    engine_pool(const engine_pool&) = delete;
    engine_pool& operator=(const engine_pool&) = delete;

    /// The number of engines (and threads).
    std::size_t size() const noexcept;

    /// Opens every engine's socket for `family` now rather than at the first
    /// ping; returns the first engine's error, if any (e.g.
    /// errc::ping_group_range).
    std::error_code open(ip_family family);

    /// One ping to every target; the result for targets[i] is element i.
    /// Throws std::invalid_argument as the free ping_all() does. An
    /// exception on one engine stops every engine from starting new pings;
    /// once all have ended, the first is rethrown (the one of the lowest
    /// target index; see "Callbacks" in ping_series.hpp).
    std::vector<ping_result> ping_all(std::span<const ip_address> targets,
                                      const ping_all_options& options = {});
    /// As above, writing into `results` (same size as `targets`).
    void ping_all(std::span<const ip_address> targets, std::span<ping_result> results,
                  const ping_all_options& options = {});

    /// The engines' counters, summed (as of the end of the last call).
    engine_stats stats() const;
    /// Each engine's counters.
    std::vector<engine_stats> engine_stats_each() const;

  private:
    struct impl;
    std::unique_ptr<impl> m_impl;
};

} // namespace icmpengine
