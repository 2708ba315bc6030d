// SPDX-License-Identifier: MIT
// icmpengine::ping_all and icmpengine::engine_pool: see engine_pool.hpp.
//
// ping_all is the fan-out machine (fanout_core.hpp) with one ping per
// target and a sink that writes results[i]; the pool runs one such machine
// per engine, all taking targets from one shared cursor.
#include <icmpengine/engine_pool.hpp>
#include <icmpengine/errors.hpp>

#include "fanout_core.hpp"
#include "ping_arguments.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <fmt/format.h>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <sched.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace icmpengine {
namespace {

void validate(const ping_all_options& options, std::size_t targets, std::size_t results) {
    if (results != targets)
        throw std::invalid_argument(fmt::format(
            "ping_all: {} results for {} targets: need one result per target", results, targets));
    if (options.window == 0)
        throw std::invalid_argument("ping_all_options: window = 0: must be at least 1");
    if (options.timeouts.empty()) {
        detail::check_ping_arguments("ping_all_options", options.timeout, options.ping);
        return;
    }
    if (options.timeouts.size() != targets)
        throw std::invalid_argument(
            fmt::format("ping_all_options: {} timeouts for {} targets: need one per target",
                        options.timeouts.size(), targets));
    // The payload once, then each timeout (with a payload that passes).
    detail::check_ping_arguments("ping_all_options", max_ping_timeout, options.ping);
    for (std::size_t i = 0; i < targets; ++i)
        if (!detail::ping_arguments_valid(options.timeouts[i], {}))
            detail::throw_invalid_ping_arguments(fmt::format("ping_all_options.timeouts[{}]", i),
                                                 options.timeouts[i], {});
}

detail::fanout_plan plan_for(const ping_all_options& options) {
    return {.count = 1,
            .timeout = options.timeout,
            .timeouts = options.timeouts,
            .ping = options.ping,
            .window = options.window};
}

/// The sink of ping_all: results[i] for targets[i].
class result_array final : public detail::fanout_sink {
  public:
    explicit result_array(std::span<ping_result> results) noexcept
        : fanout_sink(false), m_results(results) {}
    void ended(std::size_t target, std::uint64_t, const ping_result& result) override {
        m_results[target] = result;
    }

  private:
    std::span<ping_result> m_results;
};

task<void> run_ping_all(engine& eng, std::span<const ip_address> targets,
                        std::span<ping_result> results, detail::fanout_plan plan) {
    result_array sink(results);
    detail::fanout_core core(targets, plan, sink, detail::target_source(targets.size()));
    co_await core.run(eng);
    core.rethrow_if_failed();
    // Stopped by engine::stop(): the targets it never started end as the
    // engine would have ended their pings.
    const auto [first, last] = core.unstarted();
    for (std::size_t i = first; i < last; ++i) {
        results[i] = ping_result{.status = ping_status::cancelled, .from = targets[i]};
        results[i].error = make_error_code(errc::stopped);
    }
}

} // namespace

task<void> ping_all(engine& eng, std::span<const ip_address> targets,
                    std::span<ping_result> results, const ping_all_options& options) {
    validate(options, targets.size(), results.size());
    return run_ping_all(eng, targets, results, plan_for(options));
}

namespace {

/// The CPUs this process may run on, in ascending order.
std::vector<int> allowed_cpus() {
    std::vector<int> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set))
                cpus.push_back(c);
    if (cpus.empty()) {
        const unsigned n = std::max(1u, std::thread::hardware_concurrency());
        for (unsigned c = 0; c < n; ++c)
            cpus.push_back(static_cast<int>(c));
    }
    return cpus;
}

} // namespace

struct engine_pool::impl {
    using job_fn = std::function<void(engine&, std::size_t index)>;

    engine_pool_config config;
    std::vector<std::thread> threads;

    std::mutex call_mutex; // one call at a time
    std::mutex mutex;      // guards everything below
    std::condition_variable wake;
    std::condition_variable done;
    std::uint64_t generation = 0;
    bool quitting = false;
    const job_fn* job = nullptr;
    std::size_t remaining = 0;
    std::vector<std::exception_ptr> errors;
    std::vector<engine_stats> stats;

    void thread_body(std::size_t index, int cpu) {
        if (cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
            // Best effort: a refused pin leaves the scheduler in charge.
            (void)::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
        }
        std::optional<engine> eng;
        std::exception_ptr error;
        try {
            eng.emplace(config.engine);
        } catch (...) {
            error = std::current_exception();
        }
        std::uint64_t seen = 0;
        {
            std::unique_lock lock(mutex);
            errors[index] = error;
            if (--remaining == 0)
                done.notify_all();
            if (error)
                return;
        }
        for (;;) {
            const job_fn* current = nullptr;
            {
                std::unique_lock lock(mutex);
                wake.wait(lock, [&] { return quitting || generation != seen; });
                if (quitting)
                    break;
                seen = generation;
                current = job;
            }
            std::exception_ptr failure;
            try {
                (*current)(*eng, index);
            } catch (...) {
                failure = std::current_exception();
            }
            const engine_stats s = eng->stats();
            std::unique_lock lock(mutex);
            errors[index] = failure;
            stats[index] = s;
            if (--remaining == 0)
                done.notify_all();
        }
        // The engine is destroyed here, on its own thread.
    }

    /// Runs `fn` once on every engine, in parallel, and waits for all;
    /// rethrows the lowest-indexed engine's exception.
    void run_on_all(const job_fn& fn) {
        std::unique_lock call(call_mutex);
        std::unique_lock lock(mutex);
        job = &fn;
        remaining = threads.size();
        std::fill(errors.begin(), errors.end(), nullptr);
        ++generation;
        wake.notify_all();
        done.wait(lock, [&] { return remaining == 0; });
        job = nullptr;
        for (const std::exception_ptr& e : errors)
            if (e)
                std::rethrow_exception(e);
    }

    void stop_threads() noexcept {
        {
            std::unique_lock lock(mutex);
            quitting = true;
        }
        wake.notify_all();
        for (std::thread& t : threads)
            if (t.joinable())
                t.join();
    }

    /// One fan-out machine per engine over one shared cursor. An exception
    /// on one engine stops them all from starting new pings (the shared
    /// stop); the one of the lowest target index is rethrown.
    void ping_all(std::span<const ip_address> targets, std::span<ping_result> results,
                  const ping_all_options& options) {
        detail::shared_targets shared;
        // Blocks of one window: small enough that engines finish together,
        // large enough that the shared cursor is touched rarely.
        const std::size_t block = std::clamp<std::size_t>(options.window, 16, 4096);
        const detail::fanout_plan plan = plan_for(options);
        std::vector<detail::fanout_error> failures(threads.size());
        const job_fn fn = [&](engine& eng, std::size_t index) {
            result_array sink(results);
            detail::fanout_core core(targets, plan, sink,
                                     detail::target_source(shared, targets.size(), block));
            eng.run(core.run(eng));
            failures[index] = core.error();
        };
        run_on_all(fn);
        detail::fanout_error first;
        for (const detail::fanout_error& f : failures)
            if (f.error)
                first.record(f.target, f.error);
        if (first.error)
            std::rethrow_exception(first.error);
    }
};

engine_pool::engine_pool(engine_pool_config config) : m_impl(std::make_unique<impl>()) {
    const std::vector<int> cpus = allowed_cpus();
    const std::size_t n = config.engines != 0 ? config.engines : cpus.size();
    m_impl->config = std::move(config);
    m_impl->errors.resize(n);
    m_impl->stats.resize(n);
    m_impl->remaining = n;
    m_impl->threads.reserve(n);
    try {
        for (std::size_t i = 0; i < n; ++i) {
            const int cpu = m_impl->config.pin_threads ? cpus[i % cpus.size()] : -1;
            m_impl->threads.emplace_back([this, i, cpu] { m_impl->thread_body(i, cpu); });
        }
    } catch (...) {
        // Threads that did start must not wait for the ones that did not.
        {
            std::unique_lock lock(m_impl->mutex);
            m_impl->remaining -= n - m_impl->threads.size();
        }
        m_impl->stop_threads();
        throw;
    }
    // Wait until every engine is constructed; report the first failure.
    std::exception_ptr first;
    {
        std::unique_lock lock(m_impl->mutex);
        m_impl->done.wait(lock, [&] { return m_impl->remaining == 0; });
        for (const std::exception_ptr& e : m_impl->errors)
            if (e && !first)
                first = e;
    }
    if (first) {
        m_impl->stop_threads();
        std::rethrow_exception(first);
    }
}

engine_pool::~engine_pool() {
    m_impl->stop_threads();
}

std::size_t engine_pool::size() const noexcept {
    return m_impl->threads.size();
}

std::error_code engine_pool::open(ip_family family) {
    std::vector<std::error_code> codes(size());
    m_impl->run_on_all([&](engine& eng, std::size_t i) { codes[i] = eng.open(family); });
    for (const std::error_code& ec : codes)
        if (ec)
            return ec;
    return {};
}

std::vector<ping_result> engine_pool::ping_all(std::span<const ip_address> targets,
                                               const ping_all_options& options) {
    std::vector<ping_result> results(targets.size());
    ping_all(targets, std::span<ping_result>(results), options);
    return results;
}

void engine_pool::ping_all(std::span<const ip_address> targets, std::span<ping_result> results,
                           const ping_all_options& options) {
    validate(options, targets.size(), results.size());
    m_impl->ping_all(targets, results, options);
}

engine_stats engine_pool::stats() const {
    engine_stats sum;
    for (const engine_stats& s : engine_stats_each()) {
        sum.sent += s.sent;
        sum.replies += s.replies;
        sum.timeouts += s.timeouts;
        sum.icmp_errors += s.icmp_errors;
        sum.send_errors += s.send_errors;
        sum.cancelled += s.cancelled;
        sum.in_flight += s.in_flight;
        sum.waiting += s.waiting;
        sum.fake_dropped += s.fake_dropped;
        sum.late_replies += s.late_replies;
        sum.duplicate_replies += s.duplicate_replies;
        sum.invalid_packets += s.invalid_packets;
        sum.foreign_packets += s.foreign_packets;
        sum.receive_overruns += s.receive_overruns;
        sum.wrong_source += s.wrong_source;
        sum.submissions += s.submissions;
    }
    return sum;
}

std::vector<engine_stats> engine_pool::engine_stats_each() const {
    std::unique_lock lock(m_impl->mutex);
    return m_impl->stats;
}

} // namespace icmpengine
