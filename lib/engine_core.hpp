// SPDX-License-Identifier: MIT
// detail::engine_core: the engine's event loop, behind icmpengine::engine.
//
// One io_uring per engine (io_ring.hpp). Per address family one ICMP socket
// (icmp_socket.hpp) with one multishot RECVMSG into a provided-buffer ring.
// Every echo request is an IORING_OP_SEND. Deadlines live in a d-ary heap
// (deadline_heap.hpp) whose head feeds the one IORING_OP_TIMEOUT the engine
// has. Completions are harvested in batches; coroutines are resumed only
// after a batch was processed.
//
// The life of one ping, and the file each step happens in:
//  1. engine::ping / start_ping (engine.cpp) check the arguments and hand a
//     ping_request to the core.
//  2. start() (engine_send.cpp) refuses it at once if the engine stopped or
//     the socket cannot be opened (engine_core.cpp opens ring and sockets on
//     first use), queues it if max_in_flight pings are in flight, or
//     launches it: launch() takes a slot (slot_table.hpp), builds the echo
//     request with its token (packet.hpp, reply_matcher.hpp's tag) into a
//     send buffer (send_buffer_pool.hpp), and prepares its SEND.
//  3. flush_sends() (engine_send.cpp) stamps the send time of a batch of up
//     to send_batch requests, pushes their deadlines on the heap, and
//     submits them; reconcile_timer() (engine_expiry.cpp) moves the one
//     timer earlier if the new head is earlier.
//  4. The loop's turn() (engine_loop.cpp) submits, waits, and harvests a
//     batch of completions, dispatching each by its user_data: send CQEs to
//     handle_send() (engine_send.cpp: retries, send errors), receive CQEs to
//     handle_recv() / handle_errqueue() (engine_receive.cpp).
//  5. handle_recv() reads the kernel's timestamp and TTL, parse_datagram()
//     and reply_matcher::match() (reply_matcher.hpp, pure) decide which
//     ping, if any, the datagram answers; match_reply() / match_error()
//     (engine_receive.cpp) end it, or count the stray or invalid packet.
//  6. expire() (engine_expiry.cpp) ends the pings whose deadline passed,
//     after each harvest; end() counts the outcome and queues the result.
//  7. deliver_results() (engine_loop.cpp) hands results to their
//     ping_handler: a coroutine's ping_op resumes it. The slot is freed
//     once its send CQE is in too (the kernel may read the buffer until
//     then).
// Faults for tests are injected only inside io_ring (fault_plan).
#pragma once

#include "deadline_heap.hpp"
#include "frame_pool.hpp"
#include "huge_pages.hpp"
#include "icmp_socket.hpp"
#include "io_ring.hpp"
#include "packet.hpp"
#include "remote_queue.hpp"
#include "reply_matcher.hpp"
#include "send_buffer_pool.hpp"
#include "slot_table.hpp"

#include <icmpengine/detail/detached.hpp>
#include <icmpengine/engine.hpp>
#include <icmpengine/limits.hpp>

#include <array>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <sys/socket.h>
#include <vector>

namespace icmpengine::detail {

class engine_core;

/// Longest accepted ping timeout (limits.hpp), in the engine's unit.
inline constexpr std::int64_t max_timeout_ns = max_ping_timeout.count();

/// Each send buffer holds the destination's sockaddr, then the packet.
inline constexpr std::size_t sockaddr_room = 32; // sockaddr_in6 (28) rounded up
inline constexpr std::size_t send_buffer_size(std::uint32_t payload_size) noexcept {
    return sockaddr_room + icmp_header_size + payload_size;
}

/// Reads CLOCK_MONOTONIC or CLOCK_REALTIME in nanoseconds.
std::int64_t clock_ns(clockid_t clock) noexcept;

/// One ping as it was asked for: what launch() needs to send it and whom
/// to tell how it ended.
struct ping_request {
    ip_address target;
    std::int64_t timeout_ns = 0;
    std::uint32_t payload_size = 0;
    ping_handler* handler = nullptr;
    std::uint64_t cookie = 0;
    /// Where the engine notes the ping's slot, or queued_slot while it waits
    /// (ping_op's, so that an abandoned op can be found); may be null.
    std::uint32_t* slot_out = nullptr;
    /// The handler is a ping_op: its result is written into its coroutine's
    /// promise as the ping ends, and only the resumption waits for delivery.
    bool awaiter = false;
};

inline constexpr std::uint32_t queued_slot = 0xfffffffeu;

/// What engine::ping() was asked: the ping coroutine's parameter, in its
/// frame until the ping starts. The rest of a ping_request (handler, slot,
/// awaiter) follows from the op, so the frame does not hold it (issue 13:
/// every byte of a frame is a byte of fresh memory per ping in flight).
struct ping_inputs {
    engine_core* core = nullptr;
    ip_address target;
    std::int64_t timeout_ns = 0;
    std::uint32_t payload_size = 0;
};

/// The awaiting side of one ping: lives in the ping coroutine's frame (as
/// do the inputs it refers to). It is the ping's handler; its result is
/// delivered like any other handler's, written straight into the
/// coroutine's promise (no copy in the frame), and resumes the coroutine.
struct ping_op final : ping_handler {
    using promise_type = task<ping_result>::promise_type;

    const ping_inputs& m_inputs; ///< and the engine, m_inputs.core
    /// The slot while in flight and until the result is delivered;
    /// queued_slot while waiting for one; no_slot before and after.
    std::uint32_t m_slot = no_slot;
    bool m_done = false;
    bool m_resume_queued = false; ///< ended, its resumption in the engine's queue
    std::coroutine_handle<promise_type> m_waiter;

    /// `inputs` must outlive this op (both are in the coroutine's frame).
    explicit ping_op(const ping_inputs& inputs) noexcept : m_inputs(inputs) {}
    ping_op(const ping_op&) = delete;
    ping_op& operator=(const ping_op&) = delete;
    ~ping_op();

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<promise_type> h);
    /// The request this op's ping is launched or queued with: this op is its
    /// handler and notes its slot.
    ping_request request() noexcept {
        return {
            m_inputs.target, m_inputs.timeout_ns, m_inputs.payload_size, this, 0, &m_slot, true};
    }
    void await_resume() const noexcept {}
    void on_ping_result(std::uint64_t cookie, const ping_result& result) override;
    /// Ends the op with `result`, in the awaiting coroutine's promise.
    void set_result(const ping_result& result) noexcept {
        m_waiter.promise().m_result.template emplace<1>(result);
        m_done = true;
        m_slot = no_slot;
    }
};

/// The awaiting side of engine::sleep_until: lives in the sleeping
/// coroutine's frame. While queued it is in the engine's sleep heap (under
/// m_id) and, if `m_stop` can be stopped, has a stop_callback registered
/// that wakes it early.
struct sleep_op {
    struct on_stop {
        sleep_op* m_op;
        void operator()() const noexcept;
    };
    static constexpr std::uint32_t not_queued = 0xffffffffu;

    engine_core* m_core = nullptr;
    std::int64_t m_deadline = 0; ///< CLOCK_MONOTONIC ns
    std::stop_token m_stop;
    std::uint32_t m_id = not_queued;
    bool m_early = false; ///< woken by a stop request or engine stop
    std::coroutine_handle<> m_waiter;
    std::optional<std::stop_callback<on_stop>> m_on_stop;

    sleep_op(engine_core& core, std::int64_t deadline, std::stop_token stop) noexcept
        : m_core(&core), m_deadline(deadline), m_stop(std::move(stop)) {}
    sleep_op(const sleep_op&) = delete;
    sleep_op& operator=(const sleep_op&) = delete;
    ~sleep_op();

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h);
    bool await_resume() const noexcept { return !m_early; }
};

/// Per address family: the socket, its multishot receive and error-queue
/// reader. Its receive buffers are io_ring's buffer group family_index().
struct family_state {
    icmp_socket socket;
    std::error_code open_error; ///< sticky: why the socket could not be opened
    bool opened = false;
    bool fixed_file = false; ///< registered with the ring, at index family_index()
    msghdr recv_msg{};       ///< template for the multishot receive
    bool recv_armed = false;
    int route_probe_fd = -1;    ///< UDP socket for check_route(), opened on first use
    std::uint64_t overruns = 0; ///< sk_drops (SO_MEMINFO) as last read: full receive buffer

    // Error queue (datagram sockets): drained with single-shot
    // MSG_ERRQUEUE|MSG_DONTWAIT reads when the data receive reports a
    // pending socket error.
    msghdr err_msg{};
    iovec err_iov{};
    sockaddr_storage err_name{};
    std::array<std::byte, 2048> err_data{};
    std::array<std::byte, 512> err_control{};
    bool err_reading = false;
    bool err_again = false;
};

inline std::size_t family_index(ip_family f) noexcept {
    return f == ip_family::v4 ? 0 : 1;
}
inline ip_family family_at(std::size_t i) noexcept {
    return i == 0 ? ip_family::v4 : ip_family::v6;
}

/// How often the engine met each condition it recovers from (for tests and
/// the log; not in engine_stats because they are not about pings).
struct recovery_counts {
    std::uint64_t sq_full = 0;         ///< flushes forced by a full SQ
    std::uint64_t submit_retries = 0;  ///< io_uring_enter failed with EBUSY/EAGAIN/EINTR
    std::uint64_t cq_overflow = 0;     ///< harvests that found IORING_SQ_CQ_OVERFLOW set
    std::uint64_t send_retries = 0;    ///< sends repeated after a transient error
    std::uint64_t receive_enobufs = 0; ///< multishot receives ended by an empty buffer ring
    std::uint64_t receive_errors = 0;  ///< multishot receives ended by a socket error
    std::uint64_t receive_rearms = 0;  ///< multishot receives armed again
};

class engine_core {
  public:
    engine_core(engine& owner, engine_config config);
    ~engine_core();

    // engine_core.cpp: setup, sockets, counters, log.
    std::error_code open(ip_family family);
    bool stopped() const noexcept { return m_stopping; }
    /// The counters, with receive_overruns read from the sockets now.
    const engine_stats& stats() noexcept;
    void read_overruns() noexcept;
    const engine_config& config() const noexcept { return m_config; }
    std::optional<socket_mode> socket_kind(ip_family family) const noexcept;
    bool log_enabled(log_component c, log_level l) const noexcept {
        return m_log_levels[static_cast<std::size_t>(c)] >= l;
    }
    void log(log_component c, log_level l, std::string_view message) const;

    // engine_loop.cpp: the loop, delivery, spawn, stop.
    void drive(std::coroutine_handle<> root);
    void spawn(task<void> t);
    void stop();
    void record_spawn_exception(std::exception_ptr e) noexcept;
    /// detail::detached's owner interface, for spawned tasks: a finished
    /// one is destroyed by sweep_spawned(), outside its own frame.
    std::coroutine_handle<> child_finished(std::coroutine_handle<>) noexcept {
        ++m_spawned_done;
        return std::noop_coroutine();
    }
    void child_failed(std::exception_ptr e) noexcept { record_spawn_exception(std::move(e)); }

    // engine_embed.cpp: driven from another loop or thread.
    bool poll();
    int native_handle();
    std::shared_ptr<remote_queue> remote();

    // engine_send.cpp: starting pings, for ping_op and engine::start_ping.
    task<ping_result> ping(ip_address to, std::chrono::nanoseconds timeout, ping_options options);
    /// The coroutine behind ping(): its frame comes from `frames`.
    static task<ping_result> ping_in(frame_pool& frames, ping_inputs inputs);
    bool start(ping_op& op);
    ping_ticket start(const ping_request& request);
    bool cancel(const ping_ticket& ticket);
    void abandon(ping_op& op) noexcept;
    /// A ping_op whose resumption is queued is going away (its frame was
    /// destroyed): forget it.
    void drop_resume(const ping_op& op) noexcept;
    void forget(const ping_handler& handler) noexcept;

    // engine_expiry.cpp: sleeps, for sleep_op (engine::sleep_until).
    task<bool> sleep(std::int64_t deadline, std::stop_token stop);
    bool start_sleep(sleep_op& op);
    void wake(sleep_op& op, bool early);
    void abandon(sleep_op& op) noexcept;

    /// Tests: faults to inject, and what the engine recovered from.
    fault_plan& faults() noexcept { return m_ring.faults(); }
    const recovery_counts& recoveries() const noexcept { return m_recoveries; }

  private:
    /// A result on its way to its handler (see run_ready()).
    struct delivery {
        ping_handler* handler; ///< null once abandoned
        std::uint64_t cookie;
        ping_result result;
    };
    struct pending_send {
        std::uint32_t slot;
        std::int64_t timeout_ns; ///< -1: a resend, keep the deadline
    };

    // engine_core.cpp
    bool ensure_ring();
    family_state* ensure_family(ip_family family);
    bool open_socket(family_state& fs, ip_family family);

    // engine_loop.cpp
    io_uring_sqe* get_sqe();
    void submit(bool wait);
    void turn(bool may_block);
    bool has_pending_work() const noexcept;
    void run_ready();
    void harvest(bool opportunistic = false);
    void handle(const completion& c, std::int64_t realtime_offset);
    void deliver(ping_handler* handler, std::uint64_t cookie, const ping_result& result,
                 bool awaiter = false);
    bool deliveries_pending() const noexcept { return !m_deliveries.empty() || !m_resumes.empty(); }

    void deliver_results();
    void drop_deliveries(const ping_handler& handler) noexcept;
    void cancel_all();
    void sweep_spawned();
    void teardown() noexcept;

    // engine_embed.cpp
    void signal_notify() noexcept;
    void clear_notify() noexcept;
    void work_queued_outside() noexcept {
        if (m_drive_depth == 0 && m_notify_fd >= 0)
            signal_notify();
    }
    void arm_wake();
    void drain_remote();
    void close_remote();
    void run_remote(remote_queue::work& work);

    // engine_send.cpp
    std::optional<ping_result> refusal(const ip_address& target);
    void enqueue(const ping_request& request, bool front);
    void launch(const ping_request& request, bool front = false);
    void build_request(std::uint32_t index, const family_state& fs);
    void queue_send(std::uint32_t index, std::int64_t timeout_ns);
    void flush_sends(bool submit_now);
    void prep_send(std::uint32_t index);
    void resend(std::uint32_t index);
    void send_deferred();
    void handle_send(std::uint32_t index, std::int32_t res);
    bool retry_send(std::uint32_t index, std::int32_t& res);
    void admit_waiting();

    // engine_receive.cpp
    void rearm_receives();
    void arm_recv(ip_family family);
    void read_errqueue(ip_family family);
    void handle_recv(ip_family family, const completion& c, std::int64_t realtime_offset);
    void receive_ended(ip_family family, std::int32_t res);
    void handle_errqueue(ip_family family, std::int32_t res, std::int64_t realtime_offset);
    void process_message(ip_family family, const datagram& d, std::int64_t rx_mono);
    void act_on(const match_verdict& v, const ip_address& peer, std::uint16_t sequence,
                bool is_error, std::int64_t rx_mono);
    /// rx_mono, or the harvest time if the kernel's timestamp is unusable
    /// for a ping sent at tx_mono.
    std::int64_t receive_time(std::int64_t rx_mono, std::int64_t tx_mono) const noexcept;
    void match_reply(const parsed_datagram& p, std::int64_t rx_mono);
    void match_error(ip_family family, const icmp_message& m, const ip_address& destination,
                     const ip_address& reporter, std::int64_t rx_mono, bool local);
    void report_stray(stray_reply::kind what, const ip_address& from, std::uint16_t sequence,
                      std::optional<std::chrono::nanoseconds> rtt);

    // engine_expiry.cpp
    void reconcile_timer();
    void expire();
    void expire_sleepers();
    ping_result result_for(std::uint32_t index) const noexcept;
    /// The deadline of the ping in slot `index`: in the heap from the flush
    /// of its send until it ends (a slot has no copy: issue 13); no deadline
    /// before that flush, so a reply then cannot be late.
    std::int64_t deadline_of(std::uint32_t index) const noexcept {
        return m_heap.contains(index) ? m_heap.deadline_of(index)
                                      : std::numeric_limits<std::int64_t>::max();
    }
    void end(std::uint32_t index, ping_status status);
    void end(std::uint32_t index, ping_status status, ping_result result);
    void count_end(ping_status status) noexcept;
    void finish(std::uint32_t index);

    std::int64_t now_mono() const noexcept { return clock_ns(CLOCK_MONOTONIC); }

    engine& m_owner; ///< handed to remote work
    engine_config m_config;
    std::array<log_level, log_component_count> m_log_levels{};

    io_ring m_ring;
    std::error_code m_ring_error; ///< sticky: why no ring could be created
    std::array<family_state, 2> m_families;

    slot_table m_slots;
    deadline_heap m_heap;
    reply_matcher m_matcher;
    // Sleepers (engine::sleep_until): their own heap, keyed by an index into
    // m_sleepers; the one timer is armed for the earlier of the two heads.
    deadline_heap m_sleep_heap;
    std::vector<sleep_op*> m_sleepers;
    std::vector<std::uint32_t> m_free_sleepers;

    std::vector<pending_send> m_pending_sends;
    std::vector<std::uint32_t> m_deferred_resends; ///< slots to send again next turn
    std::uint32_t m_sends_in_kernel = 0;
    send_buffer_pool m_send_buffers;
    std::deque<ping_request> m_waiting; ///< in order, beyond max_in_flight
    /// ping()'s coroutine frames; released, not deleted, with the engine,
    /// since tasks may outlive it.
    std::unique_ptr<frame_pool, frame_pool_release> m_frames{new frame_pool};
    std::vector<delivery, huge_page_allocator<delivery>> m_deliveries;
    std::vector<delivery, huge_page_allocator<delivery>>
        m_delivering; ///< the batch being delivered
    /// Ended pings of ping() coroutines, their results already in their
    /// promises: 8 bytes each where a delivery holds the result (issue 13).
    std::vector<ping_op*, huge_page_allocator<ping_op*>> m_resumes;
    std::vector<ping_op*, huge_page_allocator<ping_op*>> m_resuming; ///< the batch being resumed

    // The one timer.
    __kernel_timespec m_timer_ts{};
    bool m_timer_armed = false;
    std::int64_t m_timer_deadline = 0;
    std::uint64_t m_timer_generation = 0;

    std::vector<std::coroutine_handle<>> m_ready;
    std::vector<std::coroutine_handle<>> m_ready_spare;
    std::int64_t m_harvest_mono = 0; ///< CLOCK_MONOTONIC at the current harvest

    std::vector<std::coroutine_handle<>> m_spawned;
    std::size_t m_spawned_done = 0;
    /// The first exception from a spawned task, a handler, on_stray or the
    /// log sink: rethrown by run() (mutable: the log sink is called from
    /// const members).
    mutable std::exception_ptr m_spawn_exception;

    std::uint16_t m_raw_identifier = 0;
    std::mt19937_64 m_drop_rng;
    std::bernoulli_distribution m_drop;

    recovery_counts m_recoveries;

    // Embedding (engine_embed.cpp): the eventfd registered with the ring
    // for native_handle(), and the queue of work from other threads, whose
    // eventfd a multishot poll in the ring watches.
    int m_notify_fd = -1;
    bool m_notify_signalled = false; ///< by us, since poll() last cleared it
    std::shared_ptr<remote_queue> m_remote;
    bool m_wake_armed = false;
    bool m_remote_ready = false; ///< the wake poll fired: drain the queue

    int m_drive_depth = 0;
    int m_stop_depth = 0; ///< inside stop()'s own loop (stop() outside run())
    bool m_stopping = false;
    bool m_torn_down = false;
    engine_stats m_stats;
};

/// The tests' way to the engine's internals (fault injection).
struct engine_access {
    static engine_core& core(engine& e) noexcept { return *e.m_core; }
};

} // namespace icmpengine::detail

// Logs only if the component's level allows; the message is formatted only
// then. For engine_core's members.
#define ICMPENGINE_LOG(component, level, ...)                                                      \
    do {                                                                                           \
        if (log_enabled(log_component::component, log_level::level))                               \
            log(log_component::component, log_level::level, fmt::format(__VA_ARGS__));             \
    } while (0)
