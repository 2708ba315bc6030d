// SPDX-License-Identifier: MIT
// engine_core's time: the one timer, deadlines of pings and of sleepers,
// and how a ping ends (counted once, its result queued for delivery).
#include "engine_core.hpp"

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fmt/format.h>

namespace icmpengine::detail {
namespace {

/// Makes room for `n` elements, growing by at least half the capacity.
template <typename T>
void reserve_room(std::vector<T>& v, std::size_t n) {
    if (n > v.capacity())
        v.reserve(std::max(n, v.capacity() + v.capacity() / 2 + 16));
}

} // namespace

void engine_core::reconcile_timer() {
    if (m_heap.empty() && m_sleep_heap.empty())
        return; // an armed timer with nothing behind it fires once, harmlessly
    std::int64_t head = m_heap.empty() ? m_sleep_heap.top().deadline : m_heap.top().deadline;
    if (!m_sleep_heap.empty())
        head = std::min(head, m_sleep_heap.top().deadline);
    // Armed for later than the head (a short ping behind a long one): move it
    // earlier now. Armed for earlier (the head got its reply): leave it; it
    // fires, finds nothing due and re-arms for the new head. That keeps a
    // busy fan-out from updating the timer on every reply.
    if (m_timer_armed && m_timer_deadline <= head)
        return;
    m_timer_ts.tv_sec = head / 1'000'000'000;
    m_timer_ts.tv_nsec = head % 1'000'000'000;
    io_uring_sqe* sqe = get_sqe();
    if (!m_timer_armed) {
        ++m_timer_generation;
        io_uring_prep_timeout(sqe, &m_timer_ts, 0, IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(sqe, encode(op_kind::timer, m_timer_generation));
    } else {
        io_uring_prep_timeout_update(sqe, &m_timer_ts, encode(op_kind::timer, m_timer_generation),
                                     IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(sqe, encode(op_kind::timer_update, m_timer_generation));
    }
    m_timer_armed = true;
    m_timer_deadline = head;
    ICMPENGINE_LOG(expiry, trace, "timer {} for {} ns from now", m_timer_generation,
                   head - now_mono());
}

void engine_core::expire() {
    if (m_heap.empty())
        return;
    const std::int64_t now = now_mono();
    while (!m_heap.empty() && m_heap.top().deadline <= now) {
        const std::uint32_t index = m_heap.pop().id;
        end(index, ping_status::timeout);
    }
}

// ---------------------------------------------------------------- sleeps

void sleep_op::on_stop::operator()() const noexcept {
    m_op->m_core->wake(*m_op, true);
}

sleep_op::~sleep_op() {
    // Deregister first: after this no stop request can reach the sleeper.
    m_on_stop.reset();
    if (m_id != not_queued)
        m_core->abandon(*this);
}

bool sleep_op::await_suspend(std::coroutine_handle<> h) {
    m_waiter = h;
    return m_core->start_sleep(*this);
}

task<bool> engine_core::sleep(std::int64_t deadline, std::stop_token stop) {
    sleep_op op(*this, deadline, std::move(stop));
    co_return co_await op;
}

bool engine_core::start_sleep(sleep_op& op) {
    if (m_stopping || op.m_stop.stop_requested()) {
        op.m_early = true;
        return false;
    }
    if (op.m_deadline <= now_mono())
        return false;
    if (!ensure_ring()) {
        // No ring, no timer; and no ping can be in flight either (they all
        // end as send_error at once), so there is nothing to miss: block.
        const timespec ts{static_cast<time_t>(op.m_deadline / 1'000'000'000),
                          static_cast<long>(op.m_deadline % 1'000'000'000)};
        while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        }
        return false;
    }
    // Room first, so that wake() (called from a noexcept stop callback)
    // never allocates; an allocation failure here leaves everything as it was.
    // (Grown geometrically: reserve(size() + 1) would reallocate on every
    // new sleeper, quadratic in a paced fan-out.)
    const bool reuse = !m_free_sleepers.empty();
    const auto id = reuse ? m_free_sleepers.back() : static_cast<std::uint32_t>(m_sleepers.size());
    if (!reuse) {
        reserve_room(m_sleepers, m_sleepers.size() + 1);
        reserve_room(m_free_sleepers, m_sleepers.size() + 1);
    }
    reserve_room(m_ready, m_ready.size() + m_sleep_heap.size() + 1);
    m_sleep_heap.push(id, op.m_deadline);
    if (reuse) {
        m_free_sleepers.pop_back();
        m_sleepers[id] = &op;
    } else {
        m_sleepers.push_back(&op);
    }
    op.m_id = id;
    // Registered last: if stop was requested since the check above (from
    // another thread, against the contract), the callback runs right here
    // and queues the resumption; suspending is still correct.
    if (op.m_stop.stop_possible())
        op.m_on_stop.emplace(op.m_stop, sleep_op::on_stop{&op});
    return true;
}

void engine_core::wake(sleep_op& op, bool early) {
    if (op.m_id == sleep_op::not_queued)
        return; // woken already: the deadline and a stop request raced
    m_sleep_heap.erase(op.m_id);
    m_sleepers[op.m_id] = nullptr;
    m_free_sleepers.push_back(op.m_id);
    op.m_id = sleep_op::not_queued;
    op.m_early = early;
    m_ready.push_back(op.m_waiter);
}

void engine_core::abandon(sleep_op& op) noexcept {
    // The sleeping coroutine's frame is being destroyed: forget it unresumed.
    m_sleep_heap.erase(op.m_id);
    m_sleepers[op.m_id] = nullptr;
    m_free_sleepers.push_back(op.m_id); // capacity reserved in start_sleep
    op.m_id = sleep_op::not_queued;
}

void engine_core::expire_sleepers() {
    if (m_sleep_heap.empty())
        return;
    const std::int64_t now = now_mono();
    while (!m_sleep_heap.empty() && m_sleep_heap.top().deadline <= now)
        wake(*m_sleepers[m_sleep_heap.top().id], false);
}

// ----------------------------------------------------------- ending pings

ping_result engine_core::result_for(std::uint32_t index) const noexcept {
    const slot& s = m_slots[index];
    ping_result r;
    r.from = s.target;
    r.sequence = static_cast<std::uint16_t>(index & 0xffffu);
    r.fake_dropped = s.fake_dropped;
    return r;
}

void engine_core::end(std::uint32_t index, ping_status status) {
    end(index, status, result_for(index));
}

void engine_core::count_end(ping_status status) noexcept {
    --m_stats.in_flight;
    switch (status) {
    case ping_status::reply:
        ++m_stats.replies;
        return;
    case ping_status::timeout:
        ++m_stats.timeouts;
        return;
    case ping_status::unreachable:
    case ping_status::time_exceeded:
    case ping_status::packet_too_big:
    case ping_status::parameter_problem:
        ++m_stats.icmp_errors;
        return;
    case ping_status::send_error:
        ++m_stats.send_errors;
        return;
    case ping_status::cancelled:
        ++m_stats.cancelled;
        return;
    }
}

void engine_core::end(std::uint32_t index, ping_status status, ping_result result) {
    slot& s = m_slots[index];
    if (s.state != slot_state::in_flight)
        return;
    m_heap.erase(index);
    s.state = slot_state::ended;
    s.outcome = status == ping_status::reply ? slot_outcome::reply : slot_outcome::other;
    count_end(status);
    if (s.handler != nullptr) {
        result.status = status;
        if (status == ping_status::timeout || status == ping_status::cancelled)
            result.rtt = std::chrono::nanoseconds(0);
        deliver(std::exchange(s.handler, nullptr), s.cookie, result, s.awaiter);
    }
    // The kernel may still read the request's buffer until its send CQE: the
    // slot waits for it before it is reused. (The buffer is the engine's, so
    // the result need not wait.)
    if (!s.send_pending)
        finish(index);
}

void engine_core::finish(std::uint32_t index) {
    m_slots.release(index);
}

} // namespace icmpengine::detail
