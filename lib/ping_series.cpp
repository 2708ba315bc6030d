// SPDX-License-Identifier: MIT
// ping_fanout / ping_series: see ping_series.hpp for the contract.
//
// A layer over the fan-out machine (fanout_core.hpp): it turns the series
// options into a plan, and as the machine's sink keeps each target's
// series_result and the fan-out's progress, and calls the callbacks.
#include <icmpengine/ping_series.hpp>

#include "fanout_core.hpp"
#include "ping_arguments.hpp"

#include <algorithm>
#include <exception>
#include <fmt/format.h>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace icmpengine {
namespace {

void validate(const fanout_options& o, std::size_t targets) {
    const series_options& s = o.series;
    detail::check_ping_arguments("series_options", s.timeout, s.ping);
    const bool scheduled = !s.until_reply && s.count != 1;
    if (scheduled && s.period.count() <= 0)
        throw std::invalid_argument(
            fmt::format("series_options: period = {} ns: must be positive to send {} pings",
                        s.period.count(), s.count == 0 ? "unlimited" : std::to_string(s.count)));
    if (s.period.count() < 0)
        throw std::invalid_argument(
            fmt::format("series_options: period = {} ns: must not be negative", s.period.count()));
    if (s.count > detail::fanout_core::max_count(targets))
        throw std::invalid_argument(
            fmt::format("series_options: count = {}: must be at most {} with {} targets", s.count,
                        detail::fanout_core::max_count(targets), targets));
    if (o.pace.count() < 0)
        throw std::invalid_argument(
            fmt::format("fanout_options: pace = {} ns: must not be negative", o.pace.count()));
    if (!(s.backoff >= min_backoff && s.backoff <= max_backoff)) // NaN too
        throw std::invalid_argument(fmt::format(
            "series_options: backoff = {}: must be between {:.1f} and {:.1f} (fping's range)",
            s.backoff, min_backoff, max_backoff));
}

detail::fanout_plan plan_for(const fanout_options& o) {
    const series_options& s = o.series;
    return {.count = s.count,
            .period = s.period,
            .align_starts = o.pace.count() == 0,
            .until_reply = s.until_reply,
            .backoff = s.backoff,
            .end_early = s.until_reply && s.credit_late_replies,
            .timeout = s.timeout,
            .ping = s.ping,
            .pace = o.pace};
}

/// The distinct targets in first-seen order.
std::vector<ip_address> distinct(std::span<const ip_address> targets) {
    std::vector<std::size_t> order(targets.size());
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return targets[a] < targets[b]; });
    order.erase(std::unique(order.begin(), order.end(),
                            [&](std::size_t a, std::size_t b) { return targets[a] == targets[b]; }),
                order.end());
    std::sort(order.begin(), order.end());
    std::vector<ip_address> out;
    out.reserve(order.size());
    for (const std::size_t i : order)
        out.push_back(targets[i]);
    return out;
}

} // namespace

struct ping_fanout::state final : detail::fanout_sink {
    state(std::span<const ip_address> targets, fanout_options o)
        : fanout_sink(true), options(std::move(o)), addresses(distinct(targets)),
          core(addresses, plan_for(options), *this, detail::target_source(addresses.size())) {}

    fanout_options options;
    std::vector<ip_address> addresses; ///< the core's targets
    /// Indices into `addresses`, sorted by address: finds the series a stray
    /// reply belongs to without a node per target.
    std::vector<std::size_t> by_address;
    std::vector<series_result> series;
    /// Per series: it sends no further ping (done_sending()).
    std::vector<std::uint8_t> done;
    fanout_progress progress;
    detail::fanout_core core;
    bool ran = false;

    void sent(std::size_t i, std::uint64_t /*k*/) override {
        series_result& s = series[i];
        ++s.sent;
        ++s.in_flight;
        ++progress.sent;
        ++progress.in_flight;
        if (options.series.keep_results)
            s.results.emplace_back(); // last: the counts are right if it throws
    }

    void ended(std::size_t i, std::uint64_t k, const ping_result& result) override {
        series_result& s = series[i];
        const bool was_alive = s.alive();
        --s.in_flight;
        --progress.in_flight;
        count(result.status);
        if (options.series.keep_results && k < s.results.size())
            s.results[static_cast<std::size_t>(k)] = result;
        s.statistics.add(k, result); // throws only for a negative RTT
        if (!was_alive && s.alive())
            ++progress.targets_alive;
        if (done[i] != 0 && s.in_flight == 0)
            finish(i);
        if (options.on_ping)
            options.on_ping(ping_event{i, k, result, s});
    }

    void done_sending(std::size_t i) noexcept override {
        done[i] = 1;
        if (series[i].in_flight == 0)
            finish(i);
    }

    void count(ping_status status) noexcept {
        switch (status) {
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
    }

    /// fping's credit for a late reply (series_options::credit_late_replies):
    /// whether `r` counts as series i's answer; if so the series ends alive.
    bool credit(std::size_t i, const stray_reply& r) {
        const series_options& o = options.series;
        series_result& s = series[i];
        if (!o.until_reply || !o.credit_late_replies || !r.rtt || s.sent == 0 || s.finished ||
            done[i] != 0 || s.alive())
            return false; // (sent == 0: a stray from a target not started yet)
        // fping drops a reply older than the timeout of the try in flight.
        // Which try that is: the one in flight; the next one if the reply
        // answers the one in flight, which the engine has then ended (its
        // result is on its way): fping would have sent the retry already.
        std::uint64_t attempt = s.sent;
        bool answers_in_flight = false;
        if (s.in_flight > 0) {
            attempt = s.sent - 1;
            answers_in_flight = core.in_flight_with_sequence(i, r.sequence);
            if (answers_in_flight) {
                if (o.count != 0 && attempt + 1 >= o.count)
                    return false; // the last try: fping has nothing in flight
                ++attempt;
            }
        }
        if (*r.rtt > attempt_timeout(o, attempt))
            return false;
        s.credited_rtt = *r.rtt;
        ++progress.credited;
        ++progress.targets_alive;
        // A reply to the attempt in flight came after its deadline: the
        // engine ends that attempt as a timeout right after this (or has),
        // which is its honest fate; cancelling it would hide that.
        core.end_early(i, !answers_in_flight);
        return true;
    }

    void finish(std::size_t i) noexcept {
        if (series[i].finished)
            return;
        series[i].finished = true;
        ++progress.targets_finished;
    }
};

ping_fanout::ping_fanout(std::span<const ip_address> targets, fanout_options options) {
    validate(options, targets.size());
    m_state = std::make_unique<state>(targets, std::move(options));
    state& st = *m_state;
    const std::size_t n = st.addresses.size();
    st.series.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        series_result& s = st.series[i];
        s.target = st.addresses[i];
        s.statistics = ping_statistics(st.options.series.rtt_history);
        if (st.options.series.keep_results && st.options.series.count != 0)
            s.results.reserve(static_cast<std::size_t>(
                std::min<std::uint64_t>(st.options.series.count, 1u << 16)));
    }
    st.by_address.resize(n);
    for (std::size_t i = 0; i < n; ++i)
        st.by_address[i] = i;
    std::sort(st.by_address.begin(), st.by_address.end(),
              [&st](std::size_t a, std::size_t b) { return st.addresses[a] < st.addresses[b]; });
    st.done.assign(n, 0);
    st.progress.targets = n;
}

ping_fanout::~ping_fanout() = default;

task<void> ping_fanout::run(engine& eng) {
    state& st = *m_state;
    if (st.ran)
        throw std::logic_error("ping_fanout::run: a fan-out runs once");
    st.ran = true;
    // The caller's stop token stops the fan-out like request_stop().
    auto forward = [&st] { st.core.request_stop(); };
    std::optional<std::stop_callback<decltype(forward)>> forward_stop;
    if (st.options.series.stop.stop_possible())
        forward_stop.emplace(st.options.series.stop, forward);
    co_await st.core.run(eng);
    // Series that never started (the fan-out stopped first) end here.
    for (std::size_t i = 0; i < st.series.size(); ++i)
        st.finish(i);
    st.core.rethrow_if_failed();
}

void ping_fanout::on_stray(const stray_reply& reply) {
    state& st = *m_state;
    const auto it =
        std::lower_bound(st.by_address.begin(), st.by_address.end(), reply.from,
                         [&st](std::size_t i, const ip_address& a) { return st.addresses[i] < a; });
    if (it == st.by_address.end() || st.addresses[*it] != reply.from)
        return;
    series_result& s = st.series[*it];
    bool credited = false;
    // Called from the engine's completion processing: an exception goes
    // where every callback's goes ("Callbacks").
    try {
        if (reply.what == stray_reply::kind::duplicate) {
            s.statistics.add_duplicate();
            ++st.progress.duplicates;
        } else {
            ++s.late_replies;
            ++st.progress.late_replies;
            credited = st.credit(*it, reply);
        }
        if (st.options.on_stray)
            st.options.on_stray(stray_event{*it, reply, s, credited});
    } catch (...) {
        st.core.fail(*it, std::current_exception());
    }
}

void ping_fanout::request_stop() {
    m_state->core.request_stop();
}

bool ping_fanout::stop_requested() const noexcept {
    return m_state->core.stop_requested();
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

std::chrono::nanoseconds attempt_timeout(const series_options& options,
                                         std::uint64_t attempt) noexcept {
    std::chrono::nanoseconds t = options.timeout;
    if (!options.until_reply || options.backoff == 1.0)
        return t;
    for (std::uint64_t k = 0; k < attempt; ++k) {
        const std::chrono::nanoseconds next = detail::backoff_step(t, options.backoff);
        if (next == t)
            break; // capped, or a factor that rounds to 1: it stays
        t = next;
    }
    return t;
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

} // namespace icmpengine
