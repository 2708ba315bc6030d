// SPDX-License-Identifier: MIT
// engine_core inside another event loop (poll() and native_handle()) and
// fed from other threads (remote(): the queue and its wake-up).
//
// native_handle() is an eventfd registered with the ring
// (IORING_REGISTER_EVENTFD): the kernel signals it whenever a completion is
// posted or, with DEFER_TASKRUN, deferred completion work is queued - a
// reply, an ICMP error, the timer, a finished send. The engine signals it
// itself for work queued outside poll() (a start_ping from the host loop,
// a spawned task) and for work poll() leaves for its next call. poll()
// reads it (clearing it) before doing the work, so a signal that arrives
// during poll() makes the descriptor readable again: no wake-up is lost,
// and an idle engine's descriptor stays quiet (no periodic wake-ups).
//
// Remote work goes through remote_queue: its eventfd is watched by a
// multishot IORING_OP_POLL_ADD in the ring, so a run() blocked in
// io_uring_enter wakes for it, and an embedded engine's descriptor is
// signalled through the ring like any completion.
#include "engine_core.hpp"

#include <cerrno>
#include <fmt/format.h>
#include <poll.h>
#include <stdexcept>
#include <sys/eventfd.h>
#include <system_error>
#include <unistd.h>

namespace icmpengine::detail {

void engine_core::signal_notify() noexcept {
    if (m_notify_signalled)
        return;
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(m_notify_fd, &one, sizeof one);
    m_notify_signalled = true;
}

void engine_core::clear_notify() noexcept {
    if (m_notify_fd < 0)
        return;
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = ::read(m_notify_fd, &count, sizeof count);
    m_notify_signalled = false;
}

int engine_core::native_handle() {
    if (m_notify_fd >= 0)
        return m_notify_fd;
    if (!ensure_ring())
        return -1;
    const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        throw std::system_error(errno, std::system_category(), "engine::native_handle: eventfd");
    if (!m_ring.register_eventfd(fd)) {
        ::close(fd);
        throw std::system_error(EINVAL, std::system_category(),
                                "engine::native_handle: io_uring_register_eventfd");
    }
    m_notify_fd = fd;
    if (m_remote)
        m_remote->signal_also(fd);
    signal_notify(); // whatever was queued before is poll()'s to do
    return m_notify_fd;
}

bool engine_core::poll() {
    if (m_drive_depth > 0)
        throw std::logic_error("engine::poll: called from inside run() or poll()");
    if (m_stop_depth > 0)
        throw std::logic_error("engine::poll: called from inside stop()");
    ++m_drive_depth;
    struct depth_guard {
        int& depth;
        ~depth_guard() { --depth; }
    } guard{m_drive_depth};
    clear_notify();
    // Remote work signals the descriptor directly: take it now rather than
    // wait for the ring's wake-up completion.
    if (m_remote && !m_stopping)
        drain_remote();
    // A bounded number of rounds, so that a chain of work that keeps making
    // more (a handler starting a ping that loopback answers at once) cannot
    // keep the host loop from its other work: what is left is signalled.
    constexpr int max_rounds = 16;
    for (int round = 0; round < max_rounds; ++round) {
        run_ready();
        sweep_spawned();
        turn(false);
        if (m_ready.empty() && !deliveries_pending() && !m_remote_ready)
            break;
    }
    if (!m_ready.empty() || deliveries_pending() || m_remote_ready)
        signal_notify();
    if (m_spawn_exception)
        std::rethrow_exception(std::exchange(m_spawn_exception, nullptr));
    return has_pending_work();
}

std::shared_ptr<remote_queue> engine_core::remote() {
    if (!m_remote) {
        m_remote = std::make_shared<remote_queue>();
        if (m_stopping)
            m_remote->close();
        else if (ensure_ring()) {
            arm_wake();
            if (m_notify_fd >= 0)
                m_remote->signal_also(m_notify_fd);
        } else
            m_remote->close(); // no ring: nothing could wake this engine
    }
    return m_remote;
}

void engine_core::arm_wake() {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_poll_multishot(sqe, m_remote->wake_fd(), POLLIN);
    io_uring_sqe_set_data64(sqe, encode(op_kind::wake, 0));
    m_wake_armed = true;
    work_queued_outside(); // the poll is to be submitted
}

void engine_core::run_remote(remote_queue::work& work) {
    try {
        work(m_owner);
    } catch (...) {
        record_spawn_exception(std::current_exception());
    }
}

void engine_core::drain_remote() {
    m_remote_ready = false;
    for (remote_queue::work& w : m_remote->take())
        run_remote(w);
}

void engine_core::close_remote() {
    if (!m_remote)
        return;
    // Work queued before the stop still runs: the pings it starts end as
    // cancelled, so every remote ping's callback is called once.
    for (remote_queue::work& w : m_remote->close())
        run_remote(w);
}

} // namespace icmpengine::detail
