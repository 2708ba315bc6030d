// detail::engine_core: the engine's event loop, behind icmpengine::engine.
//
// One io_uring per engine. Per address family one ICMP socket with one
// multishot RECVMSG into a provided-buffer ring. Every echo request is an
// IORING_OP_SEND. Deadlines live in a d-ary heap whose head feeds the one
// IORING_OP_TIMEOUT the engine has. Completions are harvested in batches;
// coroutines are resumed only after a batch was processed.
#pragma once

#include "deadline_heap.hpp"
#include "icmp_socket.hpp"
#include "packet.hpp"

#include <icmpengine/engine.hpp>

#include <array>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <exception>
#include <liburing.h>
#include <memory>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <sys/socket.h>
#include <vector>

namespace icmpengine::detail {

class engine_core;

/// Longest accepted ping timeout: ten years, far from int64 overflow.
inline constexpr std::int64_t max_timeout_ns = std::int64_t{10} * 365 * 24 * 3600 * 1'000'000'000;

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
};

inline constexpr std::uint32_t no_slot = 0xffffffffu;
inline constexpr std::uint32_t queued_slot = 0xfffffffeu;

/// The awaiting side of one ping: lives in the ping coroutine's frame. It is
/// the ping's handler; its result is delivered like any other handler's
/// and resumes the coroutine.
struct ping_op final : ping_handler {
    engine_core* m_core = nullptr;
    ping_request m_request;
    /// The slot while in flight and until the result is delivered;
    /// queued_slot while waiting for one; no_slot before and after.
    std::uint32_t m_slot = no_slot;
    bool m_done = false;
    std::coroutine_handle<> m_waiter;
    ping_result m_result;

    ping_op(engine_core& core, ip_address target, std::int64_t timeout_ns,
            std::uint32_t payload_size) noexcept
        : m_core(&core), m_request{target, timeout_ns, payload_size, this, 0, &m_slot} {}
    ping_op(const ping_op&) = delete;
    ping_op& operator=(const ping_op&) = delete;
    ~ping_op();

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h);
    ping_result await_resume() noexcept { return m_result; }
    void on_ping_result(std::uint64_t cookie, const ping_result& result) override;
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

/// Fixed-size buffers for requests between their SQE and their CQE. The
/// kernel reads a send's buffer (and, if it had to retry, its address) until
/// the CQE; owning them here rather than in the awaiter means an abandoned
/// coroutine frame can never leave the kernel reading freed memory, and a
/// million pings in flight do not each keep a packet around.
class send_buffer_pool {
  public:
    static constexpr std::size_t chunk_size = 128;
    std::byte* get(std::size_t size);
    void put(std::byte* p, std::size_t size) noexcept;
    ~send_buffer_pool();

  private:
    std::vector<std::unique_ptr<std::byte[]>> m_blocks;
    std::vector<std::byte*> m_free;
};

enum class slot_state : std::uint8_t {
    free,
    in_flight, ///< accepted, not yet ended
    ended,     ///< ended, waiting for its send CQE before the slot is reused
};

/// What became of one use (generation) of a slot: tells a late reply from a
/// duplicate one.
enum class slot_outcome : std::uint8_t { none, reply, other };

struct slot {
    ping_handler* handler = nullptr; ///< null when abandoned or ended
    std::uint64_t cookie = 0;        ///< handed back to `handler`
    ip_address target;
    std::int64_t tx_mono = 0;  ///< send time, CLOCK_MONOTONIC ns
    std::int64_t deadline = 0; ///< CLOCK_MONOTONIC ns
    std::byte* send_buffer = nullptr;
    std::uint32_t generation = 0;
    std::uint32_t payload_size = 0;
    slot_state state = slot_state::free;
    slot_outcome outcome = slot_outcome::none;      ///< of `generation`
    slot_outcome prev_outcome = slot_outcome::none; ///< of `generation - 1`
    bool send_pending = false;
    bool has_token = false;
    bool fake_dropped = false; ///< by engine_config::fake_drop_probability
    std::uint8_t send_attempts = 0;
    std::uint8_t address_length = 0; ///< of the sockaddr in send_buffer
};

/// Per address family: the socket, its receive ring and error-queue reader.
struct family_state {
    icmp_socket socket;
    std::error_code open_error; ///< sticky: why the socket could not be opened
    bool opened = false;
    bool fixed_file = false; ///< registered with the ring, at index family_index()

    // Provided-buffer ring for the multishot receive.
    io_uring_buf_ring* buf_ring = nullptr;
    std::size_t buf_ring_bytes = 0;
    std::unique_ptr<std::byte[]> buffers;
    std::uint16_t buffer_group = 0;
    unsigned buffers_to_return = 0;
    msghdr recv_msg{}; ///< template for the multishot receive
    bool recv_armed = false;
    bool recv_erroring = false; ///< fault_plan::receive_error: cancelling it
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

/// Resource faults for tests, injected where the kernel would produce them.
/// Each count makes that many of the next occurrences fail; counts fall to
/// zero as the faults fire.
struct fault_plan {
    std::uint32_t sq_full = 0;      ///< io_uring_get_sqe() finds the SQ full
    std::uint32_t submit_busy = 0;  ///< io_uring_enter fails with -EBUSY (CQ overflow backlog)
    std::uint32_t send_eagain = 0;  ///< a send completes with -EAGAIN
    std::uint32_t send_enobufs = 0; ///< a send completes with -ENOBUFS
    /// Keep this many receive buffers from the ring (as if still being
    /// parsed), so that the kernel runs out and ends the receive with
    /// -ENOBUFS; they go back when it does.
    std::uint32_t hold_receive_buffers = 0;
    /// End the multishot receive as a socket error (-ENETDOWN) would.
    std::uint32_t receive_error = 0;
    /// Skip this many of the harvests done between send batches, so that a
    /// burst overflows a small CQ into the kernel's backlog
    /// (IORING_SQ_CQ_OVERFLOW, IORING_FEAT_NODROP).
    std::uint32_t skip_harvests = 0;
};

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
    explicit engine_core(engine_config config);
    ~engine_core();

    task<ping_result> ping(ip_address to, std::chrono::nanoseconds timeout, ping_options options);
    void drive(std::coroutine_handle<> root);
    void spawn(task<void> t);
    std::error_code open(ip_family family);
    void stop();
    bool stopped() const noexcept { return m_stopping; }
    /// The counters, with receive_overruns read from the sockets now.
    const engine_stats& stats() noexcept;
    void read_overruns() noexcept;
    const engine_config& config() const noexcept { return m_config; }
    std::optional<socket_mode> socket_kind(ip_family family) const noexcept;

    // For ping_op and engine::start_ping.
    bool start(ping_op& op);
    void start(const ping_request& request);
    void abandon(ping_op& op) noexcept;
    void forget(const ping_handler& handler) noexcept;

    // For sleep_op (engine::sleep_until).
    task<bool> sleep(std::int64_t deadline, std::stop_token stop);
    bool start_sleep(sleep_op& op);
    void wake(sleep_op& op, bool early);
    void abandon(sleep_op& op) noexcept;

    // For spawned tasks.
    void record_spawn_exception(std::exception_ptr e) noexcept;
    void spawned_finished() noexcept { ++m_spawned_done; }

    /// Tests: faults to inject, and what the engine recovered from.
    fault_plan& faults() noexcept { return m_faults; }
    const recovery_counts& recoveries() const noexcept { return m_recoveries; }

    bool log_enabled(log_component c, log_level l) const noexcept {
        return m_log_levels[static_cast<std::size_t>(c)] >= l;
    }
    void log(log_component c, log_level l, std::string_view message) const;

  private:
    struct completion {
        std::uint64_t user_data;
        std::int32_t res;
        std::uint32_t flags;
    };
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

    bool ensure_ring();
    family_state* ensure_family(ip_family family);
    void setup_buffer_ring(family_state& fs, ip_family family);
    io_uring_sqe* get_sqe();
    void submit(bool wait);

    std::optional<ping_result> refusal(const ip_address& target);
    void enqueue(const ping_request& request, bool front);
    void launch(const ping_request& request, bool front = false);
    std::uint32_t alloc_slot(const ip_address& target, bool has_token);
    bool tokenless_conflict(std::uint32_t index, const ip_address& target) const noexcept;
    void flush_sends(bool submit_now);
    void prep_send(std::uint32_t index, int fd);
    void use_fixed_file(io_uring_sqe* sqe, ip_family family) const noexcept;
    void resend(std::uint32_t index);
    void rearm_receives();
    void reconcile_timer();
    void turn(bool may_block);
    void run_ready();
    void harvest();
    void handle(const completion& c, std::int64_t realtime_offset);
    void handle_send(std::uint32_t index, std::int32_t res);
    void handle_recv(ip_family family, const completion& c, std::int64_t realtime_offset);
    void handle_errqueue(ip_family family, std::int32_t res, std::int64_t realtime_offset);
    void arm_recv(ip_family family);
    void return_buffer(family_state& fs, unsigned short bid) noexcept;
    void read_errqueue(ip_family family);
    void process_message(ip_family family, std::span<const std::byte> payload,
                         std::size_t full_length, const sockaddr* name, std::size_t name_length,
                         std::int64_t rx_mono, int ttl);
    void match_reply(ip_family family, const icmp_message& m, std::size_t full_length,
                     const ip_address& source, std::int64_t rx_mono, int ttl);
    void match_error(ip_family family, const icmp_message& m, const ip_address& destination,
                     const ip_address& reporter, std::uint8_t type, std::uint8_t code,
                     std::int64_t rx_mono, bool local);
    std::optional<std::uint32_t> find_slot(const icmp_message& m, const ip_address& peer,
                                           std::size_t full_length, bool is_error);
    bool quote_matches(std::uint32_t index, const icmp_message& m) const noexcept;
    std::uint64_t ping_tag(std::uint32_t slot, std::uint32_t generation, std::uint16_t sequence,
                           const ip_address& target, std::size_t payload_size) const noexcept;
    void report_stray(stray_reply::kind what, const ip_address& from, std::uint16_t sequence);
    void expire();
    void expire_sleepers();
    ping_result result_for(std::uint32_t index) const noexcept;
    void end(std::uint32_t index, ping_status status);
    void end(std::uint32_t index, ping_status status, ping_result result);
    void deliver(ping_handler* handler, std::uint64_t cookie, const ping_result& result);
    void deliver_results();
    /// Results not yet delivered to `handler` go nowhere.
    void drop_deliveries(const ping_handler& handler) noexcept;
    void finish(std::uint32_t index);
    void admit_waiting();
    void cancel_all();
    void sweep_spawned();
    void teardown() noexcept;

    std::int64_t now_mono() const noexcept;

    engine_config m_config;
    std::array<log_level, log_component_count> m_log_levels{};

    io_uring m_ring{};
    bool m_ring_ready = false;
    bool m_files_registered = false; ///< a sparse table of two fixed files
    std::error_code m_ring_error;
    std::array<family_state, 2> m_families;

    std::vector<slot> m_slots;
    std::deque<std::uint32_t> m_free_slots; ///< FIFO: reuse the longest-free slot
    std::uint32_t m_slots_in_use = 0;
    deadline_heap m_heap;
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
    std::vector<delivery> m_deliveries;
    std::vector<delivery> m_delivering; ///< the batch being delivered

    // The one timer.
    __kernel_timespec m_timer_ts{};
    bool m_timer_armed = false;
    std::int64_t m_timer_deadline = 0;
    std::uint64_t m_timer_generation = 0;

    std::vector<std::coroutine_handle<>> m_ready;
    std::vector<std::coroutine_handle<>> m_ready_spare;
    std::vector<completion> m_completions;
    std::int64_t m_harvest_mono = 0; ///< CLOCK_MONOTONIC at the current harvest

    std::vector<std::coroutine_handle<>> m_spawned;
    std::size_t m_spawned_done = 0;
    /// The first exception from a spawned task, a handler, on_stray or the
    /// log sink: rethrown by run() (mutable: the log sink is called from
    /// const members).
    mutable std::exception_ptr m_spawn_exception;

    token_key m_key;
    std::uint16_t m_raw_identifier = 0;
    std::mt19937_64 m_drop_rng;
    std::bernoulli_distribution m_drop;

    fault_plan m_faults;
    recovery_counts m_recoveries;
    std::array<std::vector<unsigned short>, 2> m_held_buffers; ///< per family, by fault_plan

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
