// ping_fanout / ping_series: see ping_series.hpp for the contract.
//
// Structure: an unpaced fan-out on a schedule is one coroutine that starts
// every series' pings as they fall due (run_schedule); otherwise the fan-out
// starts one series coroutine per target (run_series). Either starts its
// pings frame-free (engine::start_ping, with the fan-out's state
// as their handler), so that ping k + 1 leaves on schedule while ping k
// still waits for its reply, and a ping costs no coroutine frame. Each
// parent joins its children, series or pings, before it ends (task_group
// below): nothing is detached, and no child outlives the frame it reports
// into.
#include <icmpengine/ping_series.hpp>

#include "engine_core.hpp" // max_timeout_ns
#include "packet.hpp"      // max_payload_size

#include <algorithm>
#include <coroutine>
#include <deque>
#include <exception>
#include <fmt/format.h>
#include <optional>
#include <stdexcept>
#include <utility>

namespace icmpengine {
namespace {

using steady = std::chrono::steady_clock;

/// Children a parent coroutine has started and not yet seen finish. The
/// parent awaits join() before its frame (which the children point into)
/// may go; the last child to finish resumes it by symmetric transfer.
class task_group {
  public:
    task_group() = default;
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;

    void started() noexcept { ++m_running; }
    /// For a finishing child: whom to transfer to.
    std::coroutine_handle<> finished() noexcept {
        if (--m_running == 0 && m_joiner)
            return std::exchange(m_joiner, {});
        return std::noop_coroutine();
    }
    void record(std::exception_ptr e) noexcept {
        if (!m_error)
            m_error = std::move(e);
    }
    std::exception_ptr error() const noexcept { return m_error; }

    auto join() noexcept {
        struct awaiter {
            task_group& m_group;
            bool await_ready() const noexcept { return m_group.m_running == 0; }
            void await_suspend(std::coroutine_handle<> h) noexcept { m_group.m_joiner = h; }
            void await_resume() const noexcept {}
        };
        return awaiter{*this};
    }

  private:
    std::size_t m_running = 0;
    std::coroutine_handle<> m_joiner;
    std::exception_ptr m_error;
};

/// A coroutine run as a child of a task_group (its first parameter). Lazy:
/// start() runs it; at its end it destroys its own frame and tells the group.
class group_child {
  public:
    struct promise_type {
        task_group* m_group;

        template <typename... Args>
        explicit promise_type(task_group& group, Args&&...) noexcept : m_group(&group) {}

        group_child get_return_object() noexcept {
            return group_child{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() const noexcept { return {}; }
        auto final_suspend() const noexcept {
            struct awaiter {
                bool await_ready() const noexcept { return false; }
                std::coroutine_handle<>
                await_suspend(std::coroutine_handle<promise_type> h) const noexcept {
                    task_group* group = h.promise().m_group;
                    h.destroy(); // suspended at its end: safe to destroy here
                    return group->finished();
                }
                void await_resume() const noexcept {}
            };
            return awaiter{};
        }
        void return_void() const noexcept {}
        void unhandled_exception() noexcept { m_group->record(std::current_exception()); }
    };

    group_child(group_child&& o) noexcept : m_handle(std::exchange(o.m_handle, {})) {}
    group_child(const group_child&) = delete;
    group_child& operator=(const group_child&) = delete;
    group_child& operator=(group_child&&) = delete;
    ~group_child() {
        if (m_handle)
            m_handle.destroy();
    }

    /// Runs the child until its first suspension (or its end).
    void start() {
        task_group& group = *m_handle.promise().m_group;
        group.started();
        std::exchange(m_handle, {}).resume();
    }

  private:
    explicit group_child(std::coroutine_handle<promise_type> h) noexcept : m_handle(h) {}
    std::coroutine_handle<promise_type> m_handle;
};

/// The global pace: hands out send turns one at a time, at least `pace`
/// apart, first come first served. Only the head of the queue sleeps, and
/// the next turn is measured from when the previous request was handed to
/// the engine (sent()), so a stalled process, a late timer or the engine's
/// set-up on the first ping never make up for lost time with a burst: the
/// pace is a minimum gap between sends, as fping -i's is.
class send_pacer {
  public:
    explicit send_pacer(std::chrono::nanoseconds pace) noexcept
        : m_pace(std::chrono::duration_cast<steady::duration>(pace)) {}
    send_pacer(const send_pacer&) = delete;
    send_pacer& operator=(const send_pacer&) = delete;

    /// True when the caller may send now: it holds the turn until it calls
    /// sent(). False if `stop` was requested while it waited (no turn held).
    task<bool> take_turn(engine& eng, std::stop_token stop) {
        if (m_busy) {
            co_await queued{*this}; // until release() resumes this caller
            if (stop.stop_requested())
                co_return false; // release() goes on with the next in line
        }
        m_busy = true;
        bool go = true;
        if (steady::now() < m_next)
            go = co_await eng.sleep_until(m_next, stop);
        go = go && !stop.stop_requested();
        if (!go)
            release();
        co_return go;
    }

    /// The holder of the turn has handed its request to the engine.
    void sent() {
        m_next = steady::now() + m_pace;
        release();
    }

  private:
    struct queued {
        send_pacer& m_pacer;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) { m_pacer.m_queue.push_back(h); }
        void await_resume() const noexcept {}
    };

    // Resumes waiters until one holds the turn (and sleeps for it) or the
    // queue is empty. Iterative: a waiter that takes its turn at once, or
    // gives up after a stop, calls release() again from inside the resume;
    // that inner call leaves the work to this loop, so the stack stays flat
    // whatever the number of waiters.
    void release() {
        m_busy = false;
        if (m_releasing)
            return;
        m_releasing = true;
        while (!m_busy && !m_queue.empty()) {
            const std::coroutine_handle<> next = m_queue.front();
            m_queue.pop_front();
            next.resume();
        }
        m_releasing = false;
    }

    steady::duration m_pace;
    steady::time_point m_next{};
    std::deque<std::coroutine_handle<>> m_queue;
    bool m_busy = false;
    bool m_releasing = false;
};

void validate(const fanout_options& o) {
    const series_options& s = o.series;
    if (s.timeout.count() <= 0 || s.timeout.count() > detail::max_timeout_ns)
        throw std::invalid_argument(
            fmt::format("series_options.timeout = {} ns: must be positive and at most ten years",
                        s.timeout.count()));
    const bool scheduled = !s.until_reply && s.count != 1;
    if (scheduled && s.period.count() <= 0)
        throw std::invalid_argument(
            fmt::format("series_options.period = {} ns: must be positive to send {} pings",
                        s.period.count(), s.count == 0 ? "unlimited" : std::to_string(s.count)));
    if (s.period.count() < 0)
        throw std::invalid_argument(
            fmt::format("series_options.period = {} ns: must not be negative", s.period.count()));
    if (s.ping.payload_size > detail::max_payload_size)
        throw std::invalid_argument(
            fmt::format("series_options.ping.payload_size = {}: exceeds {} bytes",
                        s.ping.payload_size, detail::max_payload_size));
    if (o.pace.count() < 0)
        throw std::invalid_argument(
            fmt::format("fanout_options.pace = {} ns: must not be negative", o.pace.count()));
}

} // namespace

namespace {

/// The time ping 0 of a series counts from when the fan-out is unpaced: its
/// send time rounded up to a grid shared by every series (a tenth of the
/// period, at most 1 ms). Series started in one burst then wake on a few
/// common deadlines per period instead of each on its own, which is what an
/// unpaced fan-out's CPU time is mostly made of; no gap between two pings of
/// a series is shorter than the period, and none longer by more than the grid.
steady::time_point aligned_start(steady::time_point sent, std::chrono::nanoseconds period) {
    const auto grid =
        std::chrono::duration_cast<steady::duration>(std::clamp<std::chrono::nanoseconds>(
            period / 10, std::chrono::nanoseconds(1), std::chrono::milliseconds(1)));
    const auto since_epoch = sent.time_since_epoch();
    const auto rounded = (since_epoch + grid - steady::duration(1)) / grid * grid;
    return steady::time_point(rounded);
}

} // namespace

struct ping_fanout::state final : ping_handler {
    /// A ping in flight: whose it is (the cookie is its index in `pings`).
    struct ping_ref {
        std::size_t series;
        std::uint64_t k;
    };

    fanout_options options;
    std::vector<series_result> series;
    /// (address, index in `series`), sorted by address: finds the series a
    /// stray reply belongs to without a node per target.
    std::vector<std::pair<ip_address, std::size_t>> by_address;
    std::stop_source stop;
    fanout_progress progress;
    std::optional<send_pacer> pacer; ///< with a global pace
    /// Per series while it runs: the group its pings report to.
    std::vector<task_group*> ping_groups;
    /// run_schedule() drives every series; a series is finished once it
    /// sends no more (`done_sending`) and its last ping has ended.
    bool scheduled = false;
    std::vector<std::uint8_t> done_sending;
    std::exception_ptr callback_error;     ///< from on_stray: rethrown by run()
    std::vector<ping_ref> pings;           ///< by cookie
    std::vector<std::uint64_t> free_pings; ///< cookies to reuse
    bool ran = false;

    void record(std::size_t i, std::uint64_t k, const ping_result& result) {
        series_result& s = series[i];
        const bool was_alive = s.alive();
        --s.in_flight;
        --progress.in_flight;
        s.statistics.add(k, result);
        if (options.series.keep_results)
            s.results[static_cast<std::size_t>(k)] = result;
        switch (result.status) {
        case ping_status::reply:
            ++progress.replies;
            break;
        case ping_status::timeout:
            ++progress.timeouts;
            break;
        case ping_status::unreachable:
        case ping_status::time_exceeded:
        case ping_status::packet_too_big:
        case ping_status::parameter_problem:
            ++progress.icmp_errors;
            break;
        case ping_status::send_error:
            ++progress.send_errors;
            break;
        case ping_status::cancelled:
            ++progress.cancelled;
            break;
        }
        if (!was_alive && s.alive())
            ++progress.targets_alive;
        if (options.on_ping)
            options.on_ping(ping_event{i, k, result, s});
    }

    /// Starts ping k of series i; its result comes to on_ping_result().
    void start_ping(engine& eng, std::size_t i, std::uint64_t k) {
        series_result& s = series[i];
        const series_options& o = options.series;
        std::uint64_t cookie = pings.size();
        if (free_pings.empty()) {
            pings.push_back({i, k});
        } else {
            cookie = free_pings.back();
            free_pings.pop_back();
            pings[static_cast<std::size_t>(cookie)] = {i, k};
        }
        if (o.keep_results)
            s.results.emplace_back();
        try {
            eng.start_ping(s.target, o.timeout, *this, cookie, o.ping);
        } catch (...) {
            if (o.keep_results)
                s.results.pop_back();
            free_pings.push_back(cookie);
            throw;
        }
        ++s.started;
        ++s.in_flight;
        ++progress.sent;
        ++progress.in_flight;
        ping_groups[i]->started();
    }

    void on_ping_result(std::uint64_t cookie, const ping_result& result) override {
        const ping_ref ref = pings[static_cast<std::size_t>(cookie)];
        free_pings.push_back(cookie);
        task_group& group = *ping_groups[ref.series];
        try {
            record(ref.series, ref.k, result);
        } catch (...) {
            group.record(std::current_exception()); // the series ends at its next step
        }
        if (scheduled && done_sending[ref.series] != 0 && series[ref.series].in_flight == 0)
            finish_series(ref.series);
        // Last: the series (and, through it, the fan-out) may end here.
        group.finished().resume();
    }

    void finish_series(std::size_t i) {
        series[i].finished = true;
        ++progress.targets_finished;
    }

    /// Series i sends no further ping (run_schedule()).
    void stop_sending(std::size_t i) {
        if (done_sending[i] != 0)
            return;
        done_sending[i] = 1;
        if (series[i].in_flight == 0)
            finish_series(i);
    }

    // Static: a group_child's promise takes the task_group as the first
    // parameter, which for a member coroutine would be the object.
    static group_child run_series(task_group& parent, state& st, engine& eng, std::size_t i);
    static group_child run_schedule(task_group& parent, state& st, engine& eng);
};

/// The unpaced fan-out on a schedule (fping -c / -l without -i): one
/// coroutine for every series instead of one each. The next ping of each
/// series waits in a min-heap by due time; the coroutine sleeps until the
/// earliest and starts every ping due by then. With the series' starts
/// aligned (aligned_start), a period's pings to all targets cost one engine
/// sleep, not one per target.
group_child ping_fanout::state::run_schedule(task_group& /*parent*/, state& st, engine& eng) {
    struct next_ping {
        steady::time_point due;
        steady::time_point t0; ///< the series' ping 0
        std::size_t series;
        std::uint64_t k;
    };
    // A min-heap by due time, then series: ties go in target order.
    auto later = [](const next_ping& a, const next_ping& b) {
        return a.due != b.due ? a.due > b.due : a.series > b.series;
    };
    const series_options& o = st.options.series;
    const std::stop_token stop = st.stop.get_token();
    const std::size_t n = st.series.size();
    task_group pings;
    st.scheduled = true;
    st.done_sending.assign(n, 0);
    std::fill(st.ping_groups.begin(), st.ping_groups.end(), &pings);
    std::vector<next_ping> heap;
    std::exception_ptr error;
    try {
        // Ping 0 of every series is due now, in target order (ties in the
        // heap go by series); its t0 is known once it was sent.
        const steady::time_point start = steady::now();
        heap.reserve(n);
        for (std::size_t i = 0; i < n; ++i)
            heap.push_back({start, {}, i, 0});
        std::make_heap(heap.begin(), heap.end(), later);
        while (!heap.empty() && !stop.stop_requested() && !pings.error()) {
            const steady::time_point due = heap.front().due;
            if (steady::now() < due && !co_await eng.sleep_until(due, stop))
                break;
            const steady::time_point now = std::max(steady::now(), due);
            while (!heap.empty() && heap.front().due <= now && !stop.stop_requested()) {
                std::pop_heap(heap.begin(), heap.end(), later);
                next_ping p = heap.back();
                heap.pop_back();
                st.start_ping(eng, p.series, p.k);
                if (p.k == 0)
                    p.t0 = aligned_start(steady::now(), o.period);
                if (o.count != 0 && p.k + 1 == o.count) {
                    st.stop_sending(p.series);
                    continue;
                }
                ++p.k;
                // On the schedule of ping 0, not after the previous send.
                p.due = p.t0 + std::chrono::duration_cast<steady::duration>(
                                   o.period * static_cast<std::int64_t>(p.k));
                heap.push_back(p);
                std::push_heap(heap.begin(), heap.end(), later);
            }
        }
    } catch (...) {
        error = std::current_exception();
    }
    // Stopped, or failed: no series sends again (those not yet started too).
    for (std::size_t i = 0; i < n; ++i)
        st.stop_sending(i);
    co_await pings.join();
    if (!error)
        error = pings.error();
    if (error) {
        st.stop.request_stop(); // one failure winds the whole fan-out down
        std::rethrow_exception(error);
    }
}

/// One series on its own: paced fan-outs (each ping waits for a turn of the
/// global pace) and single-shot mode (each attempt waits for the last).
group_child ping_fanout::state::run_series(task_group& /*parent*/, state& st, engine& eng,
                                           std::size_t i) {
    const series_options& o = st.options.series;
    const std::stop_token stop = st.stop.get_token();
    const bool paced = st.pacer.has_value();
    task_group pings;
    st.ping_groups[i] = &pings;
    std::exception_ptr error;
    bool holding_turn = false;
    try {
        steady::time_point t0{};
        for (std::uint64_t k = 0; o.count == 0 || k < o.count; ++k) {
            // A stopped engine cancels every attempt at once: without this,
            // single-shot mode with no attempt limit would retry forever.
            if (stop.stop_requested() || eng.stopped())
                break;
            if (o.until_reply && k > 0) {
                co_await pings.join();
                if (st.series[i].alive() || stop.stop_requested() || pings.error())
                    break;
            } else if (k > 0) {
                // On the schedule of ping 0, not after the previous send: a
                // late turn under the pace does not shift the pings after it.
                const auto due = t0 + std::chrono::duration_cast<steady::duration>(
                                          o.period * static_cast<std::int64_t>(k));
                if (!co_await eng.sleep_until(due, stop))
                    break;
            }
            if (paced ? !co_await st.pacer->take_turn(eng, stop) : stop.stop_requested())
                break;
            holding_turn = paced;
            st.start_ping(eng, i, k);
            // Measured once the ping is on its way: the engine's first ping
            // also sets up the ring and the socket, which must not shorten
            // the gap to the next one.
            if (holding_turn) {
                holding_turn = false;
                st.pacer->sent();
            }
            if (k == 0)
                t0 = steady::now();
            if (pings.error())
                break;
        }
    } catch (...) {
        error = std::current_exception();
    }
    if (holding_turn)
        st.pacer->sent(); // starting the ping failed; the others go on
    // co_await is not allowed in a handler: join here, then report.
    co_await pings.join();
    series_result& s = st.series[i];
    s.finished = true;
    ++st.progress.targets_finished;
    if (!error)
        error = pings.error();
    if (error) {
        st.stop.request_stop(); // one failure winds the whole fan-out down
        std::rethrow_exception(error);
    }
}

ping_fanout::ping_fanout(std::span<const ip_address> targets, fanout_options options)
    : m_state(std::make_unique<state>()) {
    validate(options);
    state& st = *m_state;
    st.options = std::move(options);
    // De-duplicate, keeping first occurrences in their order.
    std::vector<std::pair<ip_address, std::size_t>> order;
    order.reserve(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i)
        order.emplace_back(targets[i], i);
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    order.erase(std::unique(order.begin(), order.end(),
                            [](const auto& a, const auto& b) { return a.first == b.first; }),
                order.end());
    std::vector<std::size_t> kept;
    kept.reserve(order.size());
    for (const auto& [address, index] : order)
        kept.push_back(index);
    std::sort(kept.begin(), kept.end());
    st.series.resize(kept.size());
    for (std::size_t i = 0; i < kept.size(); ++i) {
        series_result& s = st.series[i];
        s.target = targets[kept[i]];
        s.statistics = ping_statistics(st.options.series.rtt_history);
        if (st.options.series.keep_results && st.options.series.count != 0)
            s.results.reserve(static_cast<std::size_t>(
                std::min<std::uint64_t>(st.options.series.count, 1u << 16)));
    }
    st.by_address.reserve(kept.size());
    for (std::size_t i = 0; i < st.series.size(); ++i)
        st.by_address.emplace_back(st.series[i].target, i);
    std::sort(st.by_address.begin(), st.by_address.end());
    st.progress.targets = st.series.size();
    st.ping_groups.resize(st.series.size());
    if (st.options.pace.count() > 0)
        st.pacer.emplace(st.options.pace);
}

ping_fanout::~ping_fanout() = default;

task<void> ping_fanout::run(engine& eng) {
    state& st = *m_state;
    if (st.ran)
        throw std::logic_error("ping_fanout::run: a fan-out runs once");
    st.ran = true;
    // The caller's stop token stops the fan-out like request_stop().
    auto forward = [&st] { st.stop.request_stop(); };
    std::optional<std::stop_callback<decltype(forward)>> forward_stop;
    if (st.options.series.stop.stop_possible())
        forward_stop.emplace(st.options.series.stop, forward);
    task_group series;
    std::exception_ptr error;
    try {
        if (!st.pacer && !st.options.series.until_reply)
            state::run_schedule(series, st, eng).start();
        else
            for (std::size_t i = 0; i < st.series.size(); ++i)
                state::run_series(series, st, eng, i).start();
    } catch (...) {
        error = std::current_exception();
        st.stop.request_stop();
    }
    co_await series.join();
    if (!error)
        error = series.error();
    if (!error)
        error = st.callback_error;
    if (error)
        std::rethrow_exception(error);
}

void ping_fanout::on_stray(const stray_reply& reply) {
    state& st = *m_state;
    const auto it = std::lower_bound(st.by_address.begin(), st.by_address.end(), reply.from,
                                     [](const std::pair<ip_address, std::size_t>& e,
                                        const ip_address& a) { return e.first < a; });
    if (it == st.by_address.end() || it->first != reply.from)
        return;
    series_result& s = st.series[it->second];
    if (reply.what == stray_reply::kind::duplicate) {
        s.statistics.add_duplicate();
        ++st.progress.duplicates;
    } else {
        ++s.late_replies;
        ++st.progress.late_replies;
    }
    if (!st.options.on_stray)
        return;
    // Called from the engine's completion processing: the exception stops
    // the fan-out and is rethrown by run(), like any callback's.
    try {
        st.options.on_stray(stray_event{it->second, reply, s});
    } catch (...) {
        if (!st.callback_error)
            st.callback_error = std::current_exception();
        st.stop.request_stop();
    }
}

void ping_fanout::request_stop() {
    m_state->stop.request_stop();
}

bool ping_fanout::stop_requested() const noexcept {
    return m_state->stop.stop_requested();
}

std::span<const series_result> ping_fanout::series() const noexcept {
    return m_state->series;
}

const fanout_progress& ping_fanout::progress() const noexcept {
    return m_state->progress;
}

const fanout_options& ping_fanout::options() const noexcept {
    return m_state->options;
}

namespace {
task<series_result> run_alone(engine& eng, std::unique_ptr<ping_fanout> fan) {
    co_await fan->run(eng);
    co_return fan->series().front();
}
} // namespace

task<series_result> ping_series(engine& eng, ip_address target, series_options options) {
    // Built here, not in the lazy coroutine: bad options throw at the call.
    auto fan = std::make_unique<ping_fanout>(std::span<const ip_address>(&target, 1),
                                             fanout_options{.series = std::move(options)});
    return run_alone(eng, std::move(fan));
}

task<series_result> ping_series(engine& eng, ip_address target, std::uint64_t count,
                                std::chrono::nanoseconds period, std::chrono::nanoseconds timeout,
                                ping_options options) {
    return ping_series(
        eng, target,
        series_options{.count = count, .period = period, .timeout = timeout, .ping = options});
}

} // namespace icmpengine
