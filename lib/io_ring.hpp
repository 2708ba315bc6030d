// SPDX-License-Identifier: MIT
// detail::io_ring: the engine's io_uring, its provided-buffer rings, and the
// one seam where tests inject resource faults.
//
// The engine talks to the kernel only through this class: it takes SQEs
// here, submits here, and reads completions here. Every fault in fault_plan
// is injected inside this file, where the kernel would produce it, so that
// the engine's own code has no test branches on its hot path.
#pragma once

#include "huge_pages.hpp"

#include <cstddef>
#include <cstdint>
#include <liburing.h>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace icmpengine::detail {

/// user_data layout: the kind in the top byte, an index or generation below.
enum class op_kind : std::uint8_t { send = 1, recv, errqueue, timer, timer_update, cancel, wake };

constexpr std::uint64_t encode(op_kind kind, std::uint64_t value) noexcept {
    return std::uint64_t{static_cast<std::uint8_t>(kind)} << 56 | (value & ((1ull << 56) - 1));
}
constexpr op_kind kind_of(std::uint64_t user_data) noexcept {
    return static_cast<op_kind>(user_data >> 56);
}
constexpr std::uint64_t value_of(std::uint64_t user_data) noexcept {
    return user_data & ((1ull << 56) - 1);
}

/// A CQE as copied out of the completion queue.
struct completion {
    std::uint64_t user_data;
    std::int32_t res;
    std::uint32_t flags;
};

/// Resource faults for tests, injected where the kernel would produce them.
/// Each count makes that many of the next occurrences fail; counts fall to
/// zero as the faults fire.
struct fault_plan {
    std::uint32_t sq_full = 0;      ///< get_sqe() finds the SQ full
    std::uint32_t submit_busy = 0;  ///< io_uring_enter fails with -EBUSY (CQ overflow backlog)
    std::uint32_t send_eagain = 0;  ///< a send completes with -EAGAIN
    std::uint32_t send_enobufs = 0; ///< a send completes with -ENOBUFS
    /// Keep this many receive buffers from the ring (as if still being
    /// parsed), so that the kernel runs out and ends the receive with
    /// -ENOBUFS; they go back when it does.
    std::uint32_t hold_receive_buffers = 0;
    /// End the multishot receive as a socket error (-ENETDOWN) would.
    std::uint32_t receive_error = 0;
    /// Skip this many of the opportunistic reaps done between send batches,
    /// so that a burst overflows a small CQ into the kernel's backlog
    /// (IORING_SQ_CQ_OVERFLOW, IORING_FEAT_NODROP).
    std::uint32_t skip_harvests = 0;
};

/// What init() did, for the engine's log.
struct ring_setup {
    std::error_code error;  ///< set if no ring could be created
    int errno_value = 0;    ///< the kernel's answer, when it refused
    bool fell_back = false; ///< the 6.1 flags were refused: plain ring
    bool no_drop = true;    ///< IORING_FEAT_NODROP
    unsigned sq_entries = 0;
    unsigned cq_entries = 0;
    unsigned flags = 0;
};

class io_ring {
  public:
    /// Groups of provided buffers: one per address family.
    static constexpr std::size_t buffer_groups = 2;

    io_ring() = default;
    io_ring(const io_ring&) = delete;
    io_ring& operator=(const io_ring&) = delete;
    ~io_ring();

    /// Creates the ring (SINGLE_ISSUER | DEFER_TASKRUN, falling back to a
    /// plain ring on kernels before 6.1) with a CQ four times the SQ.
    ring_setup init(std::uint32_t queue_depth);
    bool ready() const noexcept { return m_ready; }

    /// A free SQE, or null when the SQ is full: flush and submit, then ask
    /// again.
    io_uring_sqe* get_sqe() noexcept;
    /// One io_uring_enter: submits what is queued and, if `wait`, waits for
    /// at least one completion. Returns its result (-EBUSY, -EAGAIN, -EINTR
    /// are the caller's to retry after reaping).
    int enter(bool wait) noexcept;
    /// Copies up to out.size() completions and hands their CQ slots back to
    /// the kernel. An `opportunistic` reap (between send batches) may be
    /// skipped by the fault plan.
    unsigned reap(std::span<completion> out, bool opportunistic);
    /// The kernel had to keep completions in its overflow backlog.
    bool cq_overflowed() const noexcept;

    /// An echo request to the address at `to` (sendto(2) semantics).
    void prep_send(io_uring_sqe* sqe, int fd, bool fixed, const std::byte* packet,
                   std::size_t length, const std::byte* to, std::uint8_t to_length,
                   std::uint64_t user_data) noexcept;

    /// Registers two sparse fixed-file places (one per family) on first use,
    /// and puts `fd` at `index`. False if the kernel refuses.
    bool register_file(unsigned index, int fd) noexcept;
    /// Has the kernel signal `fd` (an eventfd) whenever a completion is
    /// posted or deferred work is queued for this ring.
    bool register_eventfd(int fd) noexcept;

    /// Provided buffers for group `group`: `count` (a power of two) buffers
    /// of `size` bytes. Throws std::system_error.
    void setup_buffers(std::uint16_t group, unsigned count, unsigned size);
    std::byte* buffer(std::uint16_t group, unsigned short id) noexcept;
    /// Gives buffer `id` back to the kernel; published by publish_buffers().
    void return_buffer(std::uint16_t group, unsigned short id) noexcept;
    /// Makes the returned buffers of every group visible to the kernel.
    void publish_buffers() noexcept;

    /// Cancels every request in flight and reaps until `busy()` says nothing
    /// is left (bounded), then tears the ring down. For the engine's end.
    template <typename Busy, typename Reap>
    void drain_and_exit(Busy busy, Reap reap) {
        if (!m_ready) {
            exit();
            return;
        }
        cancel_everything();
        for (int round = 0; round < 100 && busy(); ++round) {
            wait_briefly();
            reap();
        }
        exit();
    }

    fault_plan& faults() noexcept { return m_faults; }

  private:
    struct buffer_group {
        io_uring_buf_ring* ring = nullptr;
        std::size_t ring_bytes = 0;
        populated_memory memory;
        unsigned count = 0;
        unsigned size = 0;
        unsigned to_return = 0;
        std::vector<unsigned short> held; ///< by fault_plan::hold_receive_buffers
    };

    void add_buffer(std::uint16_t group, unsigned short id) noexcept;
    void inject_receive_error(completion& c) noexcept;
    void cancel_everything() noexcept;
    void wait_briefly() noexcept;
    void exit() noexcept;

    io_uring m_ring{};
    bool m_ready = false;
    bool m_files_registered = false;
    bool m_files_tried = false;
    buffer_group m_groups[buffer_groups];
    fault_plan m_faults;
    bool m_receive_erroring[buffer_groups] = {}; ///< fault_plan::receive_error: cancelling it
};

} // namespace icmpengine::detail
