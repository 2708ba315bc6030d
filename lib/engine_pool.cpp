// icmpengine::ping_all and icmpengine::engine_pool: see engine_pool.hpp.
//
// A fan-out is one coroutine and no frame per ping: it starts `window`
// pings with engine::start_ping and, as each result arrives, the next one,
// taking target indices from a source (shared between the engines of a
// pool). What stays per ping in flight is the engine's slot.
#include "engine_core.hpp"

#include <icmpengine/engine_pool.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <coroutine>
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
#include <variant>

namespace icmpengine {
namespace {

constexpr std::size_t no_index = static_cast<std::size_t>(-1);

void check_timeout(std::chrono::nanoseconds timeout, const char* what, std::size_t index) {
    if (timeout.count() > 0 && timeout.count() <= detail::max_timeout_ns)
        return;
    const std::string where = index == no_index ? "" : fmt::format("[{}]", index);
    throw std::invalid_argument(
        fmt::format("ping_all_options.{}{} = {} ns: must be positive and at most ten years", what,
                    where, timeout.count()));
}

void validate(const ping_all_options& options, std::size_t targets) {
    if (options.window == 0)
        throw std::invalid_argument("ping_all_options.window = 0: must be at least 1");
    if (options.timeouts.empty()) {
        check_timeout(options.timeout, "timeout", no_index);
    } else {
        if (options.timeouts.size() != targets)
            throw std::invalid_argument(
                fmt::format("ping_all_options.timeouts: {} timeouts for {} targets: need one "
                            "per target",
                            options.timeouts.size(), targets));
        for (std::size_t i = 0; i < targets; ++i)
            check_timeout(options.timeouts[i], "timeouts", i);
    }
    if (options.ping.payload_size > detail::max_payload_size)
        throw std::invalid_argument(
            fmt::format("ping_all_options.ping.payload_size = {}: exceeds {} bytes",
                        options.ping.payload_size, detail::max_payload_size));
}

void require_same_size(std::size_t targets, std::size_t results) {
    if (targets != results)
        throw std::invalid_argument(fmt::format(
            "ping_all: {} results for {} targets: need one result per target", results, targets));
}

/// Hands out target indices to the workers of one engine: all of [0, count)
/// for a lone fan-out, or blocks claimed from a cursor that the engines of
/// a pool share (one atomic operation per block, not per ping).
class index_source {
  public:
    explicit index_source(std::size_t count) noexcept : m_end(count), m_count(count) {}
    index_source(std::atomic<std::size_t>& shared, std::size_t count, std::size_t block) noexcept
        : m_count(count), m_block(block), m_shared(&shared) {}

    std::size_t next() noexcept {
        if (m_next == m_end) {
            if (m_shared == nullptr)
                return no_index;
            const std::size_t first = m_shared->fetch_add(m_block, std::memory_order_relaxed);
            if (first >= m_count)
                return no_index;
            m_next = first;
            m_end = std::min(first + m_block, m_count);
        }
        return m_next++;
    }

  private:
    std::size_t m_next = 0;
    std::size_t m_end = 0;
    std::size_t m_count = 0;
    std::size_t m_block = 0;
    std::atomic<std::size_t>* m_shared = nullptr;
};

/// Where results go: an array indexed like the targets, or a callback.
using result_sink = std::variant<std::span<ping_result>, const result_callback*>;

class ping_all_job final : public ping_handler {
  public:
    ping_all_job(engine& eng, std::span<const ip_address> targets, result_sink sink,
                 const ping_all_options& options, index_source source) noexcept
        : m_eng(eng), m_targets(targets), m_sink(sink), m_options(options), m_source(source) {}
    ping_all_job(const ping_all_job&) = delete;
    ping_all_job& operator=(const ping_all_job&) = delete;
    /// Destroyed with pings in flight (its task was destroyed early): they
    /// must not report to it.
    ~ping_all_job() {
        if (m_in_flight > 0)
            m_eng.forget(*this);
    }

    /// Starts the first window of pings; completes when every ping ended.
    auto run() noexcept {
        struct awaiter {
            ping_all_job& m_job;
            bool await_ready() {
                m_job.fill();
                return m_job.m_in_flight == 0;
            }
            void await_suspend(std::coroutine_handle<> h) noexcept { m_job.m_waiter = h; }
            void await_resume() const noexcept {}
        };
        return awaiter{*this};
    }

    std::exception_ptr callback_error() const noexcept { return m_callback_error; }

    void on_ping_result(std::uint64_t index, const ping_result& result) override {
        --m_in_flight;
        deliver(static_cast<std::size_t>(index), result);
        fill();
        if (m_in_flight == 0 && m_waiter)
            std::exchange(m_waiter, {}).resume(); // last: the job may be gone after it
    }

  private:
    void fill() {
        while (m_in_flight < m_options.window && !m_exhausted) {
            const std::size_t i = m_source.next();
            if (i == no_index) {
                m_exhausted = true;
                break;
            }
            ++m_in_flight;
            m_eng.start_ping(m_targets[i],
                             m_options.timeouts.empty() ? m_options.timeout : m_options.timeouts[i],
                             *this, i, m_options.ping);
        }
    }

    void deliver(std::size_t index, const ping_result& result) {
        if (auto* array = std::get_if<std::span<ping_result>>(&m_sink)) {
            (*array)[index] = result;
            return;
        }
        // A throwing callback must not stop the fan-out: the targets after
        // it would never be pinged.
        try {
            (*std::get<const result_callback*>(m_sink))(index, result);
        } catch (...) {
            if (!m_callback_error || index < m_callback_error_index) {
                m_callback_error = std::current_exception();
                m_callback_error_index = index;
            }
        }
    }

    engine& m_eng;
    std::span<const ip_address> m_targets;
    result_sink m_sink;
    ping_all_options m_options;
    index_source m_source;
    std::size_t m_in_flight = 0;
    bool m_exhausted = false;
    std::coroutine_handle<> m_waiter;
    std::exception_ptr m_callback_error{};
    std::size_t m_callback_error_index = 0;
};

/// `owned_callback` keeps a callback given by value alive in this frame.
task<void> run_ping_all(engine& eng, std::span<const ip_address> targets, result_sink sink,
                        ping_all_options options, index_source source,
                        std::optional<result_callback> owned_callback) {
    if (owned_callback)
        sink = &*owned_callback;
    ping_all_job job(eng, targets, sink, options, source);
    co_await job.run();
    if (job.callback_error())
        std::rethrow_exception(job.callback_error());
}

} // namespace

task<void> ping_all(engine& eng, std::span<const ip_address> targets,
                    std::span<ping_result> results, const ping_all_options& options) {
    validate(options, targets.size());
    require_same_size(targets.size(), results.size());
    return run_ping_all(eng, targets, results, options, index_source(targets.size()), std::nullopt);
}

task<void> ping_all(engine& eng, std::span<const ip_address> targets, result_callback on_result,
                    const ping_all_options& options) {
    validate(options, targets.size());
    if (!on_result)
        throw std::invalid_argument("ping_all: the result callback is empty");
    return run_ping_all(eng, targets, result_sink{}, options, index_source(targets.size()),
                        std::move(on_result));
}

// ------------------------------------------------------------ engine_pool

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

    void ping_all(std::span<const ip_address> targets, result_sink sink,
                  const ping_all_options& options) {
        std::atomic<std::size_t> cursor{0};
        // Blocks of one window: small enough that engines finish together,
        // large enough that the shared cursor is touched rarely.
        const std::size_t block = std::clamp<std::size_t>(options.window, 16, 4096);
        const job_fn fn = [&](engine& eng, std::size_t) {
            eng.run(run_ping_all(eng, targets, sink, options,
                                 index_source(cursor, targets.size(), block), std::nullopt));
        };
        run_on_all(fn);
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
    validate(options, targets.size());
    require_same_size(targets.size(), results.size());
    m_impl->ping_all(targets, results, options);
}

void engine_pool::ping_all(std::span<const ip_address> targets, const result_callback& on_result,
                           const ping_all_options& options) {
    validate(options, targets.size());
    if (!on_result)
        throw std::invalid_argument("engine_pool::ping_all: the result callback is empty");
    m_impl->ping_all(targets, &on_result, options);
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
        sum.submissions += s.submissions;
    }
    return sum;
}

std::vector<engine_stats> engine_pool::engine_stats_each() const {
    std::unique_lock lock(m_impl->mutex);
    return m_impl->stats;
}

} // namespace icmpengine
