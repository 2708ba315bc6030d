// SPDX-License-Identifier: MIT
// detail::fanout_core: see fanout_core.hpp for the life of one ping.
#include "fanout_core.hpp"

#include <icmpengine/limits.hpp>

#include <algorithm>
#include <bit>
#include <stdexcept>
#include <utility>

namespace icmpengine::detail {
namespace {

using steady = std::chrono::steady_clock;

/// The time ping 0 of a target counts from in an unpaced fan-out: its send
/// time rounded up to a grid shared by every target (a tenth of the period,
/// at most 1 ms). Targets started in one burst then fall due on a few common
/// deadlines per period instead of each on its own, which is what an
/// unpaced fan-out's CPU time is mostly made of; no gap between two pings
/// of a target is shorter than the period, and none longer by more than
/// the grid.
steady::time_point aligned_start(steady::time_point sent, std::chrono::nanoseconds period) {
    const auto grid =
        std::chrono::duration_cast<steady::duration>(std::clamp<std::chrono::nanoseconds>(
            period / 10, std::chrono::nanoseconds(1), std::chrono::milliseconds(1)));
    const auto since_epoch = sent.time_since_epoch();
    const auto rounded = (since_epoch + grid - steady::duration(1)) / grid * grid;
    return steady::time_point(rounded);
}

} // namespace

std::chrono::nanoseconds backoff_step(std::chrono::nanoseconds t, double backoff) noexcept {
    // fping: `h->timeout *= backoff` with an int64_t timeout and a float
    // factor: the product is a float, converted back by truncation.
    const float product = static_cast<float>(t.count()) * static_cast<float>(backoff);
    if (!(product < static_cast<float>(max_ping_timeout.count())))
        return max_ping_timeout;
    return std::chrono::nanoseconds(static_cast<std::int64_t>(product));
}

fanout_core::fanout_core(std::span<const ip_address> targets, const fanout_plan& plan,
                         fanout_sink& sink, target_source source)
    : m_targets(targets), m_plan(plan), m_sink(sink), m_source(source),
      m_target_bits(static_cast<unsigned>(std::bit_width(targets.size()))),
      m_target_mask((std::uint64_t{1} << m_target_bits) - 1),
      m_count_limit(max_count(targets.size())) {
    if (m_plan.until_reply && m_plan.end_early) {
        m_tickets.resize(targets.size());
        m_ended_early.resize(targets.size());
    }
}

fanout_core::~fanout_core() {
    if (m_in_flight > 0 && m_eng != nullptr)
        m_eng->forget(*this);
}

std::uint64_t fanout_core::max_count(std::size_t targets) noexcept {
    const int bits = std::bit_width(targets);
    if (bits == 0)
        return std::numeric_limits<std::uint64_t>::max();
    return std::uint64_t{1} << (64 - bits);
}

auto fanout_core::wait_for_results() noexcept {
    struct awaiter {
        fanout_core& m_core;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) noexcept { m_core.m_waiter = h; }
        void await_resume() const noexcept {}
    };
    return awaiter{*this};
}

task<void> fanout_core::run(engine& eng) {
    if (m_ran)
        throw std::logic_error("a fan-out runs once");
    m_ran = true;
    m_eng = &eng;
    fill();
    while (!finished()) {
        steady::time_point at;
        if (next_send_time(at)) {
            if (m_wake.stop_requested())
                m_wake = std::stop_source();
            m_sleeping = true;
            m_sleep_until = at;
            co_await eng.sleep_until(at, m_wake.get_token());
            m_sleeping = false;
        } else {
            co_await wait_for_results(); // the last result of note resumes it (poke)
        }
        fill();
    }
}

void fanout_core::rethrow_if_failed() const {
    if (m_error.error)
        std::rethrow_exception(m_error.error);
}

void fanout_core::request_stop() noexcept {
    if (!m_stopping) {
        m_stopping = true;
        m_source.stop();
        for (const next_ping& p : m_heap)
            if (!ended_early(p.target)) // it was told already
                done_sending(p.target);
        m_heap.clear();
    }
    if (m_sleeping)
        m_wake.request_stop();
}

void fanout_core::fail(std::size_t target, std::exception_ptr e) noexcept {
    m_error.record(target, std::move(e));
    request_stop();
}

bool fanout_core::finished() const noexcept {
    return m_in_flight == 0 && (m_stopping || (m_source_done && m_heap.empty()));
}

bool fanout_core::next_send_time(steady::time_point& at) const noexcept {
    if (m_stopping || m_in_flight >= m_plan.window)
        return false;
    if (!m_source_done)
        at = steady::time_point::min(); // only the pace holds it back
    else if (!m_heap.empty())
        at = m_heap.front().due;
    else
        return false;
    if (m_plan.pace.count() > 0)
        at = std::max(at, m_pace_next);
    return true;
}

// A min-heap by due time, then target: ties go in target order.
bool fanout_core::later(const next_ping& a, const next_ping& b) noexcept {
    return a.due != b.due ? a.due > b.due : a.target > b.target;
}

void fanout_core::fill() noexcept {
    if (m_eng->stopped()) // it would cancel every ping at once: start no more
        request_stop();
    try {
        // Read lazily: an unpaced one-shot fan-out never looks at the clock.
        steady::time_point now{};
        while (!m_stopping && m_in_flight < m_plan.window && fill_one(now)) {
        }
    } catch (...) {
        fail(no_target, std::current_exception());
    }
}

// Starts the next ping allowed at `now` (re-read when stale); false if none is.
bool fanout_core::fill_one(steady::time_point& now) {
    if (m_plan.pace.count() > 0) {
        now = steady::now();
        if (now < m_pace_next)
            return false;
    }
    if (!m_source_done) {
        if (const std::size_t target = m_source.next(); target != no_target) {
            start(target, 0, {});
            return true;
        }
        m_source_done = true;
    }
    if (m_heap.empty())
        return false;
    if (m_heap.front().due > now) {
        now = steady::now();
        if (m_heap.front().due > now)
            return false;
    }
    std::pop_heap(m_heap.begin(), m_heap.end(), later);
    const next_ping p = m_heap.back();
    m_heap.pop_back();
    if (!ended_early(p.target)) // else dropped: its target sends no more
        start(p.target, p.k, p.t0);
    return true;
}

std::chrono::nanoseconds fanout_core::timeout_for(std::size_t target, std::uint64_t k) {
    if (!m_plan.timeouts.empty())
        return m_plan.timeouts[target];
    if (!m_plan.until_reply || m_plan.backoff == 1.0)
        return m_plan.timeout;
    // Attempt k's timeout, shared by every target: computed once, up to the
    // attempt where it stops changing (the cap, or a factor that rounds to 1).
    if (m_attempt_timeouts.empty())
        m_attempt_timeouts.push_back(m_plan.timeout);
    while (m_attempt_timeouts.size() <= k) {
        const auto next = backoff_step(m_attempt_timeouts.back(), m_plan.backoff);
        if (next == m_attempt_timeouts.back())
            return next;
        m_attempt_timeouts.push_back(next);
    }
    return m_attempt_timeouts[static_cast<std::size_t>(k)];
}

void fanout_core::end_early(std::size_t target, bool cancel) {
    if (m_ended_early.empty() || m_ended_early[target] != 0)
        return; // not a plan with end_early, or done already
    m_ended_early[target] = 1;
    if (m_tickets[target].handler != nullptr) {
        // Its result (cancelled, or what the engine ended it with) comes to
        // on_ping_result, which then sends no further attempt.
        if (cancel)
            m_eng->cancel(m_tickets[target]);
        return;
    }
    // Between attempts: the next one waits in m_heap for its turn of the
    // pace; fill_one drops it then. (No poke(): this runs inside the
    // engine's receive path, where run()'s coroutine must not be resumed.)
    done_sending(target);
}

bool fanout_core::in_flight_with_sequence(std::size_t target,
                                          std::uint16_t sequence) const noexcept {
    if (m_tickets.empty())
        return false;
    const ping_ticket& t = m_tickets[target];
    return t.handler != nullptr && t.slot != 0xffffffffu &&
           static_cast<std::uint16_t>(t.slot & 0xffffu) == sequence;
}

void fanout_core::start(std::size_t target, std::uint64_t k, steady::time_point t0) {
    const std::chrono::nanoseconds timeout = timeout_for(target, k);
    try {
        const ping_ticket ticket = m_eng->start_ping(m_targets[target], timeout, *this,
                                                     k << m_target_bits | target, m_plan.ping);
        if (!m_tickets.empty())
            m_tickets[target] = ticket;
    } catch (...) {
        if (k > 0)
            done_sending(target); // it sent before; it never will again
        throw;
    }
    ++m_in_flight;
    if (m_plan.pace.count() > 0) // measured from the hand-over, as fping -i's gap
        m_pace_next = steady::now() + std::chrono::duration_cast<steady::duration>(m_plan.pace);
    if (m_sink.follows_sends()) {
        try {
            m_sink.sent(target, k);
        } catch (...) {
            fail(target, std::current_exception());
        }
    }
    if (m_plan.until_reply)
        return; // the result decides (on_ping_result)
    const bool last = (m_plan.count != 0 && k + 1 == m_plan.count) || k + 1 == m_count_limit;
    if (last || m_stopping) {
        done_sending(target);
        return;
    }
    if (k == 0) {
        // Measured once the ping is on its way: the engine's first ping also
        // sets up the ring and the socket, which must not shorten the gap.
        const steady::time_point sent = steady::now();
        t0 = m_plan.align_starts ? aligned_start(sent, m_plan.period) : sent;
    }
    // On the schedule of ping 0, not after this send: a late turn under the
    // pace does not shift the pings after it.
    const auto due = t0 + std::chrono::duration_cast<steady::duration>(
                              m_plan.period * static_cast<std::int64_t>(k + 1));
    schedule({due, t0, target, k + 1});
}

void fanout_core::schedule(const next_ping& p) {
    try {
        m_heap.push_back(p);
    } catch (...) {
        done_sending(p.target);
        throw;
    }
    std::push_heap(m_heap.begin(), m_heap.end(), later);
}

void fanout_core::on_ping_result(std::uint64_t cookie, const ping_result& result) {
    const auto target = static_cast<std::size_t>(cookie & m_target_mask);
    const std::uint64_t k = cookie >> m_target_bits;
    --m_in_flight;
    if (!m_tickets.empty())
        m_tickets[target] = {};
    try {
        m_sink.ended(target, k, result);
    } catch (...) {
        fail(target, std::current_exception());
    }
    if (m_plan.until_reply) {
        // Single-shot: the next attempt after one that got no reply.
        const bool again = !m_stopping && !ended_early(target) &&
                           result.status != ping_status::reply &&
                           (m_plan.count == 0 || k + 1 < m_plan.count) && k + 1 < m_count_limit;
        try {
            if (!again)
                done_sending(target);
            else
                schedule({steady::now(), {}, target, k + 1});
        } catch (...) {
            fail(no_target, std::current_exception());
        }
    }
    fill();
    poke(); // last: run()'s coroutine may end the fan-out and free this
}

void fanout_core::poke() noexcept {
    steady::time_point at;
    if (m_waiter) {
        if (finished() || next_send_time(at))
            std::exchange(m_waiter, {}).resume();
    } else if (m_sleeping && !m_wake.stop_requested()) {
        // A ping scheduled since it went to sleep may be due earlier.
        if (m_stopping || (next_send_time(at) && at < m_sleep_until))
            m_wake.request_stop();
    }
}

} // namespace icmpengine::detail
