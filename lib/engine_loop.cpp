// SPDX-License-Identifier: MIT
// engine_core's loop: turns of submit, harvest, expire and admit; delivery
// of results; spawned tasks; stop and teardown.
#include "engine_core.hpp"

#include <icmpengine/errors.hpp>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>
#include <unistd.h>

namespace icmpengine::detail {
namespace {

/// The coroutine behind engine::spawn: owned by the engine, which destroys
/// the frame once it has finished (or at stop, if it never can).
detached<engine_core> spawn_body(task<void> t) {
    co_await std::move(t);
}

struct depth_guard {
    int& depth;
    explicit depth_guard(int& d) noexcept : depth(d) { ++depth; }
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;
    ~depth_guard() { --depth; }
};

} // namespace

io_uring_sqe* engine_core::get_sqe() {
    io_uring_sqe* sqe = m_ring.get_sqe();
    while (sqe == nullptr) {
        ++m_recoveries.sq_full;
        // A full SQ is flushed and retried, never an error for the caller.
        // Pending sends get their send time first: they are submitted now.
        flush_sends(false);
        submit(false);
        sqe = m_ring.get_sqe();
    }
    return sqe;
}

void engine_core::submit(bool wait) {
    for (;;) {
        const int rc = m_ring.enter(wait);
        ++m_stats.submissions;
        if (rc >= 0)
            return;
        ++m_recoveries.submit_retries;
        if (rc == -EINTR)
            continue;
        if (rc == -EAGAIN || rc == -EBUSY) {
            // The kernel is short of resources or the CQ overflow list is
            // full: make room by reaping, then try again.
            ICMPENGINE_LOG(ring, warn, "io_uring_enter: {}; reaping and retrying",
                           std::strerror(-rc));
            harvest();
            wait = false;
            continue;
        }
        ICMPENGINE_LOG(ring, error, "io_uring_enter: {}", std::strerror(-rc));
        return;
    }
}

void engine_core::drive(std::coroutine_handle<> root) {
    if (m_drive_depth > 0)
        throw std::logic_error("engine::run: already running (run() does not nest)");
    if (m_stop_depth > 0)
        throw std::logic_error("engine::run: called from inside stop()");
    const depth_guard guard(m_drive_depth);

    m_ready.push_back(root);
    while (!root.done()) {
        run_ready();
        if (root.done())
            break;
        sweep_spawned();
        if (!has_pending_work())
            throw std::logic_error("engine::run: the task waits for something this engine "
                                   "does not drive (no ping in flight)");
        turn(true);
    }
    sweep_spawned();
    if (m_spawn_exception)
        std::rethrow_exception(std::exchange(m_spawn_exception, nullptr));
}

bool engine_core::has_pending_work() const noexcept {
    // Armed for remote work, the engine may be woken from another thread.
    return m_stats.in_flight > 0 || m_sends_in_kernel > 0 || !m_pending_sends.empty() ||
           !m_waiting.empty() || !m_ready.empty() || deliveries_pending() ||
           !m_sleep_heap.empty() || (m_wake_armed && !m_stopping);
}

void engine_core::run_ready() {
    for (;;) {
        deliver_results();
        if (m_ready.empty())
            break;
        std::swap(m_ready, m_ready_spare);
        for (std::coroutine_handle<> h : m_ready_spare)
            h.resume();
        m_ready_spare.clear();
    }
}

void engine_core::turn(bool may_block) {
    if (!m_ring.ready())
        return;
    rearm_receives();
    if (m_remote && !m_wake_armed && !m_stopping)
        arm_wake();
    send_deferred();
    flush_sends(false);
    reconcile_timer();
    // Never blocks with remote work announced: its wake-up was consumed (the
    // eventfd stays signalled, so the multishot poll will not fire again
    // until the queue is taken).
    const bool block = may_block && m_ready.empty() && !deliveries_pending() && !m_remote_ready &&
                       (m_stats.in_flight > 0 || m_sends_in_kernel > 0 || !m_sleep_heap.empty() ||
                        (m_wake_armed && !m_stopping));
    submit(block);
    harvest();
    // Remote work may start pings whose sends reap completions mid-burst,
    // the next wake-up among them: drain until none is left announced.
    while (m_remote_ready)
        drain_remote();
    expire();
    expire_sleepers();
    admit_waiting();
}

void engine_core::harvest(bool opportunistic) {
    if (!m_ring.ready())
        return;
    // Copy a batch of CQEs, hand the CQ slots back to the kernel, then
    // process: processing never resumes a coroutine (resumed coroutines
    // would queue new SQEs mid-batch), it only queues results.
    if (m_ring.cq_overflowed())
        ++m_recoveries.cq_overflow; // liburing flushes the backlog as we peek
    std::array<completion, 256> batch;
    for (;;) {
        const unsigned n = m_ring.reap(batch, opportunistic);
        if (n == 0)
            break;
        // SO_TIMESTAMPNS stamps are CLOCK_REALTIME; deadlines and send times
        // are CLOCK_MONOTONIC. One offset per batch converts. The time is
        // also what every reply of the batch is checked against (and the
        // RTT of one without a usable stamp): each was received before its
        // CQE was posted, and so before the reap. Per batch, not per
        // harvest: reaping again may run deferred work and post new CQEs.
        // The wall clock is read first: the offset then errs towards a later
        // receive time (a longer RTT), never towards one shorter than real.
        const std::int64_t realtime = clock_ns(CLOCK_REALTIME);
        m_harvest_mono = now_mono();
        const std::int64_t realtime_offset = realtime - m_harvest_mono;
        for (unsigned i = 0; i < n; ++i)
            handle(batch[i], realtime_offset);
        m_ring.publish_buffers();
        if (n < batch.size())
            break;
    }
}

void engine_core::handle(const completion& c, std::int64_t realtime_offset) {
    const std::uint64_t value = value_of(c.user_data);
    switch (kind_of(c.user_data)) {
    case op_kind::send:
        handle_send(static_cast<std::uint32_t>(value), c.res);
        return;
    case op_kind::recv:
        handle_recv(family_at(value), c, realtime_offset);
        return;
    case op_kind::errqueue:
        handle_errqueue(family_at(value), c.res, realtime_offset);
        return;
    case op_kind::timer:
        // -ETIME: fired; -ECANCELED: removed. Either way that timer is gone
        // (a stale generation is an older timer whose CQE arrived late).
        if (value == m_timer_generation)
            m_timer_armed = false;
        ICMPENGINE_LOG(expiry, trace, "timer {} completed: {}", value, c.res);
        return;
    case op_kind::timer_update:
        // -ENOENT: the timer fired before the update; its own CQE says so.
        return;
    case op_kind::cancel:
        return;
    case op_kind::wake:
        m_remote_ready = true;
        if (!(c.flags & IORING_CQE_F_MORE))
            m_wake_armed = false; // re-armed next turn
        return;
    }
    ICMPENGINE_LOG(ring, error, "unknown completion user_data {:#x} res {}", c.user_data, c.res);
}

void engine_core::deliver(ping_handler* handler, std::uint64_t cookie, const ping_result& result,
                          bool awaiter) {
    if (awaiter) {
        auto* op = static_cast<ping_op*>(handler);
        op->set_result(result);
        op->m_resume_queued = true;
        m_resumes.push_back(op);
        return;
    }
    m_deliveries.push_back({handler, cookie, result});
}

void engine_core::deliver_results() {
    // Handlers may start pings, and so end others (a full SQ is flushed and
    // reaped at once): those go to m_deliveries / m_resumes while this
    // batch is out.
    while (deliveries_pending()) {
        std::swap(m_deliveries, m_delivering);
        for (std::size_t i = 0; i < m_delivering.size(); ++i) {
            const delivery& d = m_delivering[i];
            if (d.handler == nullptr)
                continue; // its ping_op was abandoned meanwhile
            try {
                d.handler->on_ping_result(d.cookie, d.result);
            } catch (...) {
                record_spawn_exception(std::current_exception());
            }
        }
        m_delivering.clear();
        std::swap(m_resumes, m_resuming);
        for (std::size_t i = 0; i < m_resuming.size(); ++i) {
            ping_op* op = m_resuming[i];
            if (op == nullptr)
                continue; // its frame was destroyed meanwhile
            op->m_resume_queued = false;
            // A frame destroyed since (by a coroutine resumed before this
            // one) took itself off this list: drop_resume().
            op->m_waiter.resume();
        }
        m_resuming.clear();
    }
}

void engine_core::drop_resume(const ping_op& op) noexcept {
    for (auto* v : {&m_resumes, &m_resuming})
        for (ping_op*& p : *v)
            if (p == &op)
                p = nullptr;
}

void engine_core::drop_deliveries(const ping_handler& handler) noexcept {
    for (auto* v : {&m_deliveries, &m_delivering})
        for (delivery& d : *v)
            if (d.handler == &handler)
                d.handler = nullptr;
}

void engine_core::spawn(task<void> t) {
    const std::coroutine_handle<> h = spawn_body(std::move(t)).release(*this);
    m_spawned.push_back(h);
    m_ready.push_back(h); // starts at the next turn of a run() or poll()
    work_queued_outside();
}

void engine_core::record_spawn_exception(std::exception_ptr e) noexcept {
    if (!m_spawn_exception)
        m_spawn_exception = std::move(e);
}

void engine_core::sweep_spawned() {
    if (m_spawned_done == 0)
        return;
    std::erase_if(m_spawned, [](std::coroutine_handle<> h) {
        if (!h.done())
            return false;
        h.destroy();
        return true;
    });
    m_spawned_done = 0;
}

void engine_core::cancel_all() {
    while (!m_waiting.empty()) {
        const ping_request request = m_waiting.front();
        m_waiting.pop_front();
        --m_stats.waiting;
        ++m_stats.sent;
        ++m_stats.cancelled;
        ping_result r;
        r.from = request.target;
        r.status = ping_status::cancelled;
        r.error = make_error_code(errc::stopped);
        deliver(request.handler, request.cookie, r, request.awaiter);
    }
    for (std::uint32_t i = 0; i < m_slots.size(); ++i)
        if (m_slots[i].state == slot_state::in_flight) {
            ping_result r = result_for(i);
            r.error = make_error_code(errc::stopped);
            end(i, ping_status::cancelled, std::move(r));
        }
    while (!m_sleep_heap.empty())
        wake(*m_sleepers[m_sleep_heap.top().id], true);
}

void engine_core::stop() {
    if (!m_stopping) {
        m_stopping = true;
        ICMPENGINE_LOG(ring, info, "stopping: {} pings in flight, {} waiting", m_stats.in_flight,
                       m_stats.waiting);
        close_remote();
    }
    cancel_all();
    if (m_drive_depth > 0 || m_stop_depth > 0 || m_torn_down)
        return; // the running loop delivers the cancelled; teardown comes later
    // m_stop_depth: a stop() from a handler or coroutine resumed below.
    const depth_guard guard(m_stop_depth);
    // Resume everyone cancelled and collect every send CQE still due.
    for (;;) {
        flush_sends(false);
        run_ready();
        cancel_all();
        sweep_spawned();
        if (m_ready.empty() && !deliveries_pending() && m_sends_in_kernel == 0)
            break;
        if (m_ring.ready())
            turn(true);
    }
    // Whatever spawned task is still suspended waits for something outside
    // the engine and can never finish: destroy it.
    for (std::coroutine_handle<> h : m_spawned)
        h.destroy();
    m_spawned.clear();
    teardown();
}

void engine_core::teardown() noexcept {
    if (m_torn_down)
        return;
    m_torn_down = true;
    // Cancel the multishot receives, error-queue reads and the timer, and
    // reap their final CQEs: the buffers they point to are freed below.
    m_ring.drain_and_exit(
        [this] {
            bool busy = m_timer_armed || m_sends_in_kernel > 0 || m_wake_armed;
            for (const family_state& fs : m_families)
                busy = busy || fs.recv_armed || fs.err_reading;
            return busy;
        },
        [this] { harvest(); });
    read_overruns(); // the sockets' last count, before they close
    if (m_notify_fd >= 0) {
        ::close(m_notify_fd);
        m_notify_fd = -1;
    }
    for (family_state& fs : m_families) {
        if (fs.socket.fd >= 0) {
            ::close(fs.socket.fd);
            fs.socket.fd = -1;
        }
        if (fs.route_probe_fd >= 0) {
            ::close(fs.route_probe_fd);
            fs.route_probe_fd = -1;
        }
    }
    for (slot& s : m_slots.all()) {
        m_send_buffers.put(s.send_buffer, send_buffer_size(s.payload_size));
        s.send_buffer = nullptr;
    }
}

} // namespace icmpengine::detail
