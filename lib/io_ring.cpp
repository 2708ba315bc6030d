// SPDX-License-Identifier: MIT
#include "io_ring.hpp"

#include <algorithm>
#include <cerrno>
#include <sys/mman.h>
#include <system_error>
#include <unistd.h>

namespace icmpengine::detail {

io_ring::~io_ring() {
    exit();
}

ring_setup io_ring::init(std::uint32_t queue_depth) {
    ring_setup r;
    io_uring_params p{};
    // One thread submits (SINGLE_ISSUER), and completions are processed only
    // when we ask for events (DEFER_TASKRUN, Linux 6.1): no interrupts of the
    // loop, and CQEs arrive in batches. TASKRUN_FLAG lets liburing see that
    // deferred work is pending. The CQ is larger than the SQ because every
    // request has a CQE and replies add one each.
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
              IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
    p.cq_entries = std::min<std::uint32_t>(queue_depth * 4, 65536);
    int rc = io_uring_queue_init_params(queue_depth, &m_ring, &p);
    if (rc == -EINVAL) {
        r.fell_back = true;
        p = {};
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = std::min<std::uint32_t>(queue_depth * 4, 65536);
        rc = io_uring_queue_init_params(queue_depth, &m_ring, &p);
    }
    if (rc < 0) {
        r.errno_value = -rc;
        r.error = std::error_code(-rc, std::system_category());
        return r;
    }
    r.no_drop = (p.features & IORING_FEAT_NODROP) != 0;
    r.sq_entries = p.sq_entries;
    r.cq_entries = p.cq_entries;
    r.flags = p.flags;
    io_uring_register_ring_fd(&m_ring); // an optimisation; fine if refused
    m_ready = true;
    return r;
}

io_uring_sqe* io_ring::get_sqe() noexcept {
    if (m_faults.sq_full > 0) {
        --m_faults.sq_full; // as if the SQ were full
        return nullptr;
    }
    return io_uring_get_sqe(&m_ring);
}

int io_ring::enter(bool wait) noexcept {
    if (m_faults.submit_busy > 0) {
        --m_faults.submit_busy; // as if the CQ overflow backlog were full
        return -EBUSY;
    }
    return wait ? io_uring_submit_and_wait(&m_ring, 1) : io_uring_submit_and_get_events(&m_ring);
}

bool io_ring::cq_overflowed() const noexcept {
    return (IO_URING_READ_ONCE(*m_ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0;
}

unsigned io_ring::reap(std::span<completion> out, bool opportunistic) {
    if (opportunistic && m_faults.skip_harvests > 0) {
        --m_faults.skip_harvests;
        return 0;
    }
    constexpr unsigned chunk = 256;
    io_uring_cqe* cqes[chunk];
    const unsigned n = io_uring_peek_batch_cqe(
        &m_ring, cqes, static_cast<unsigned>(std::min<std::size_t>(out.size(), chunk)));
    for (unsigned i = 0; i < n; ++i)
        out[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    io_uring_cq_advance(&m_ring, n);
    if (m_faults.receive_error > 0 || m_faults.hold_receive_buffers > 0 || m_receive_erroring[0] ||
        m_receive_erroring[1] || !m_groups[0].held.empty() || !m_groups[1].held.empty())
        for (unsigned i = 0; i < n; ++i)
            inject_receive_error(out[i]);
    return n;
}

void io_ring::inject_receive_error(completion& c) noexcept {
    if (kind_of(c.user_data) != op_kind::recv)
        return;
    const auto group = static_cast<std::size_t>(value_of(c.user_data));
    if (group >= buffer_groups)
        return;
    if (c.flags & IORING_CQE_F_MORE) {
        if (m_faults.receive_error > 0 && (c.flags & IORING_CQE_F_BUFFER) &&
            !m_receive_erroring[group]) {
            // End this receive as a socket error would: cancel it, and
            // report its final -ECANCELED as -ENETDOWN.
            if (io_uring_sqe* sqe = get_sqe()) {
                --m_faults.receive_error;
                m_receive_erroring[group] = true;
                io_uring_prep_cancel64(sqe, c.user_data, 0);
                io_uring_sqe_set_data64(sqe, encode(op_kind::cancel, 0));
            }
        }
        return;
    }
    if (m_receive_erroring[group] && c.res == -ECANCELED) {
        m_receive_erroring[group] = false;
        c.res = -ENETDOWN;
    }
    if (c.res == -ENOBUFS) {
        // Whatever the fault plan held goes back now.
        buffer_group& g = m_groups[group];
        std::vector<unsigned short> held = std::move(g.held);
        g.held.clear();
        for (unsigned short id : held)
            add_buffer(static_cast<std::uint16_t>(group), id);
    }
}

void io_ring::prep_send(io_uring_sqe* sqe, int fd, bool fixed, const std::byte* packet,
                        std::size_t length, const std::byte* to, std::uint8_t to_length,
                        std::uint64_t user_data) noexcept {
    if (m_faults.send_eagain > 0 || m_faults.send_enobufs > 0) {
        // A failed send, through the kernel's completion path: IORING_OP_NOP
        // with IORING_NOP_INJECT_RESULT (Linux 6.9; liburing 2.3 has neither
        // the flag nor a helper, so the SQE is filled by hand: the flag is
        // bit 0 of nop_flags, which shares its place with rw_flags, and the
        // result goes in len).
        const int err = m_faults.send_eagain > 0 ? EAGAIN : ENOBUFS;
        --(err == EAGAIN ? m_faults.send_eagain : m_faults.send_enobufs);
        io_uring_prep_nop(sqe);
        sqe->rw_flags = 1u << 0; // IORING_NOP_INJECT_RESULT
        sqe->len = static_cast<std::uint32_t>(-err);
        io_uring_sqe_set_data64(sqe, user_data);
        return;
    }
    io_uring_prep_send(sqe, fd, packet, length, 0);
    // sendto(2) semantics: liburing 2.3 lacks io_uring_prep_sendto (2.4), so
    // the destination is filled in by hand; IORING_OP_SEND reads it from
    // addr2/addr_len since Linux 6.0.
    sqe->addr2 = reinterpret_cast<std::uintptr_t>(to);
    sqe->addr_len = to_length;
    io_uring_sqe_set_data64(sqe, user_data);
    if (fixed)
        sqe->flags |= IOSQE_FIXED_FILE;
}

bool io_ring::register_file(unsigned index, int fd) noexcept {
    // Registered ("fixed") files spare every request the kernel's fget/fput
    // of the socket: about 1 % of a loopback fan-out's CPU time. Plain fds
    // if the kernel refuses (IORING_REGISTER_FILES, sparse since Linux 5.19).
    if (!m_files_tried) {
        m_files_tried = true;
        m_files_registered = io_uring_register_files_sparse(&m_ring, buffer_groups) == 0;
    }
    return m_files_registered && io_uring_register_files_update(&m_ring, index, &fd, 1) == 1;
}

bool io_ring::register_eventfd(int fd) noexcept {
    return io_uring_register_eventfd(&m_ring, fd) == 0;
}

void io_ring::setup_buffers(std::uint16_t group, unsigned count, unsigned size) {
    buffer_group& g = m_groups[group];
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    g.ring_bytes = (count * sizeof(io_uring_buf) + page - 1) / page * page;
    void* mem =
        ::mmap(nullptr, g.ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        throw std::system_error(errno, std::system_category(), "mmap of the buffer ring");
    g.ring = static_cast<io_uring_buf_ring*>(mem);
    // liburing 2.3 has no io_uring_setup_buf_ring(): init + register by hand.
    io_uring_buf_ring_init(g.ring);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem);
    reg.ring_entries = count;
    reg.bgid = group;
    if (int rc = io_uring_register_buf_ring(&m_ring, &reg, 0); rc < 0) {
        ::munmap(mem, g.ring_bytes);
        g.ring = nullptr;
        throw std::system_error(-rc, std::system_category(), "io_uring_register_buf_ring");
    }
    g.count = count;
    g.size = size;
    // The kernel fills the buffers in ring order, so every one is written
    // within the first `count` replies: populated now, at open(), rather
    // than faulted in page by page under the first burst of replies.
    g.memory = populated_memory(std::size_t{count} * size);
    for (unsigned i = 0; i < count; ++i)
        add_buffer(group, static_cast<unsigned short>(i));
    publish_buffers();
}

std::byte* io_ring::buffer(std::uint16_t group, unsigned short id) noexcept {
    return m_groups[group].memory.get() + std::size_t{id} * m_groups[group].size;
}

void io_ring::return_buffer(std::uint16_t group, unsigned short id) noexcept {
    if (m_faults.hold_receive_buffers > 0) {
        --m_faults.hold_receive_buffers;
        m_groups[group].held.push_back(id); // as if still being parsed
        return;
    }
    add_buffer(group, id);
}

void io_ring::add_buffer(std::uint16_t group, unsigned short id) noexcept {
    buffer_group& g = m_groups[group];
    io_uring_buf_ring_add(g.ring, buffer(group, id), g.size, id, io_uring_buf_ring_mask(g.count),
                          static_cast<int>(g.to_return++));
}

void io_ring::publish_buffers() noexcept {
    for (buffer_group& g : m_groups) {
        if (g.to_return != 0) {
            io_uring_buf_ring_advance(g.ring, static_cast<int>(g.to_return));
            g.to_return = 0;
        }
    }
}

void io_ring::cancel_everything() noexcept {
    if (!m_ready)
        return;
    io_uring_sqe* sqe = io_uring_get_sqe(&m_ring);
    if (sqe == nullptr) {
        io_uring_submit(&m_ring);
        sqe = io_uring_get_sqe(&m_ring);
    }
    if (sqe != nullptr) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data64(sqe, encode(op_kind::cancel, 0));
    }
}

void io_ring::wait_briefly() noexcept {
    __kernel_timespec ts{0, 10'000'000};
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait_timeout(&m_ring, &cqe, 1, &ts, nullptr);
}

void io_ring::exit() noexcept {
    if (m_ready) {
        io_uring_queue_exit(&m_ring);
        m_ready = false;
    }
    for (buffer_group& g : m_groups) {
        if (g.ring != nullptr) {
            ::munmap(g.ring, g.ring_bytes);
            g.ring = nullptr;
        }
    }
}

} // namespace icmpengine::detail
