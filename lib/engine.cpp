#include "engine_core.hpp"

#include <icmpengine/errors.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fmt/format.h>
#include <limits>
#include <linux/errqueue.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdexcept>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

// Logs only if the component's level allows; the message is formatted only then.
#define ICMPENGINE_LOG(component, level, ...)                                                      \
    do {                                                                                           \
        if (log_enabled(log_component::component, log_level::level))                               \
            log(log_component::component, log_level::level, fmt::format(__VA_ARGS__));             \
    } while (0)

namespace icmpengine::detail {
namespace {

// user_data layout: the kind in the top byte, an index or generation below.
enum class op_kind : std::uint8_t { send = 1, recv, errqueue, timer, timer_update, cancel };

constexpr std::uint64_t encode(op_kind kind, std::uint64_t value) noexcept {
    return std::uint64_t{static_cast<std::uint8_t>(kind)} << 56 | (value & ((1ull << 56) - 1));
}
constexpr op_kind kind_of(std::uint64_t user_data) noexcept {
    return static_cast<op_kind>(user_data >> 56);
}
constexpr std::uint64_t value_of(std::uint64_t user_data) noexcept {
    return user_data & ((1ull << 56) - 1);
}

constexpr std::size_t sockaddr_room = 32; // sockaddr_in6 (28) rounded up, before each packet
constexpr std::size_t recv_control_size = 128;
constexpr socklen_t recv_name_size = 32;
// A message length the kernel did not tell us (a truncated receive).
constexpr std::size_t unknown_length = std::numeric_limits<std::size_t>::max();

std::size_t family_index(ip_family f) noexcept {
    return f == ip_family::v4 ? 0 : 1;
}
ip_family family_at(std::size_t i) noexcept {
    return i == 0 ? ip_family::v4 : ip_family::v6;
}

std::int64_t clock_ns(clockid_t clock) noexcept {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

ip_address address_from(const sockaddr* sa, std::size_t len) noexcept {
    if (sa == nullptr)
        return {};
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
        sockaddr_in in{};
        std::memcpy(&in, sa, sizeof in);
        std::array<std::uint8_t, 4> b{};
        std::memcpy(b.data(), &in.sin_addr, 4);
        return ip_address::from_v4_bytes(b);
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        sockaddr_in6 in6{};
        std::memcpy(&in6, sa, sizeof in6);
        std::array<std::uint8_t, 16> b{};
        std::memcpy(b.data(), &in6.sin6_addr, 16);
        return ip_address::from_v6_bytes(b, in6.sin6_scope_id);
    }
    return {};
}

socklen_t fill_sockaddr(const ip_address& a, std::byte* out) noexcept {
    if (a.is_v4()) {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        std::memcpy(&sa.sin_addr, a.bytes().data(), 4);
        std::memcpy(out, &sa, sizeof sa);
        return sizeof sa;
    }
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    std::memcpy(&sa.sin6_addr, a.bytes().data(), 16);
    sa.sin6_scope_id = a.scope_id();
    std::memcpy(out, &sa, sizeof sa);
    return sizeof sa;
}

// Addresses match if family and bytes do; a scope id only counts when both
// sides have one (the kernel reports it on link-local replies).
bool same_host(const ip_address& a, const ip_address& b) noexcept {
    if (a.family() != b.family() || a.bytes() != b.bytes())
        return false;
    return a.scope_id() == 0 || b.scope_id() == 0 || a.scope_id() == b.scope_id();
}

ping_status error_status(ip_family family, std::uint8_t type, std::uint8_t code) noexcept {
    if (family == ip_family::v4) {
        switch (type) {
        case icmp4_dest_unreachable:
            return code == icmp4_frag_needed_code ? ping_status::packet_too_big
                                                  : ping_status::unreachable;
        case icmp4_time_exceeded:
            return ping_status::time_exceeded;
        default:
            return ping_status::parameter_problem;
        }
    }
    switch (type) {
    case icmp6_dest_unreachable:
        return ping_status::unreachable;
    case icmp6_packet_too_big:
        return ping_status::packet_too_big;
    case icmp6_time_exceeded:
        return ping_status::time_exceeded;
    default:
        return ping_status::parameter_problem;
    }
}

bool is_power_of_two(std::uint32_t v) noexcept {
    return v != 0 && (v & (v - 1)) == 0;
}

/// Makes room for `n` elements, growing by at least half the capacity.
template <typename T>
void reserve_room(std::vector<T>& v, std::size_t n) {
    if (n > v.capacity())
        v.reserve(std::max(n, v.capacity() + v.capacity() / 2 + 16));
}

void validate(const engine_config& c) {
    auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
    if (!is_power_of_two(c.queue_depth) || c.queue_depth < 8 || c.queue_depth > 32768)
        fail(fmt::format("engine_config.queue_depth = {}: must be a power of two in 8..32768",
                         c.queue_depth));
    if (c.max_in_flight < 1 || c.max_in_flight > (1u << 24))
        fail(fmt::format("engine_config.max_in_flight = {}: must be in 1..16777216",
                         c.max_in_flight));
    if (c.send_batch < 1 || c.send_batch > c.queue_depth)
        fail(fmt::format("engine_config.send_batch = {}: must be in 1..queue_depth ({})",
                         c.send_batch, c.queue_depth));
    if (!is_power_of_two(c.receive_buffers) || c.receive_buffers < 16 || c.receive_buffers > 32768)
        fail(fmt::format("engine_config.receive_buffers = {}: must be a power of two in "
                         "16..32768",
                         c.receive_buffers));
    if (c.receive_buffer_size < 256 || c.receive_buffer_size > 65536)
        fail(fmt::format("engine_config.receive_buffer_size = {}: must be in 256..65536",
                         c.receive_buffer_size));
    if (c.dscp > 63)
        fail(fmt::format("engine_config.dscp = {}: must be in 0..63", c.dscp));
    if (!(c.fake_drop_probability >= 0.0 && c.fake_drop_probability <= 1.0))
        fail(fmt::format("engine_config.fake_drop_probability = {}: must be in 0..1",
                         c.fake_drop_probability));
    if (c.source_v4 && !c.source_v4->is_v4())
        fail(fmt::format("engine_config.source_v4 = {}: not an IPv4 address",
                         c.source_v4->to_string()));
    if (c.source_v6 && !c.source_v6->is_v6())
        fail(fmt::format("engine_config.source_v6 = {}: not an IPv6 address",
                         c.source_v6->to_string()));
    if (c.interface.size() >= IFNAMSIZ)
        fail(fmt::format("engine_config.interface = \"{}\": longer than {} characters", c.interface,
                         IFNAMSIZ - 1));
    if (c.mode != socket_mode::automatic && c.mode != socket_mode::datagram &&
        c.mode != socket_mode::raw)
        fail("engine_config.mode: not a socket_mode");
}

/// The coroutine behind engine::spawn: owned by the engine, which destroys
/// the frame once it has finished (or at stop, if it never can).
struct spawned {
    struct promise_type {
        engine_core* m_core;
        promise_type(engine_core* core, task<void>&) noexcept : m_core(core) {}
        spawned get_return_object() noexcept {
            return {std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() const noexcept { return {}; }
        auto final_suspend() noexcept {
            m_core->spawned_finished();
            return std::suspend_always{};
        }
        void return_void() const noexcept {}
        void unhandled_exception() noexcept {
            m_core->record_spawn_exception(std::current_exception());
        }
    };
    std::coroutine_handle<promise_type> m_handle;
};

spawned spawn_body(engine_core* /*for the promise*/, task<void> t) {
    co_await std::move(t);
}

} // namespace

// ---------------------------------------------------------------- ping_op

ping_op::~ping_op() {
    if (!m_done && m_core != nullptr && m_slot != no_slot)
        m_core->abandon(*this);
}

bool ping_op::await_suspend(std::coroutine_handle<> h) {
    m_waiter = h;
    return m_core->start(*this);
}

void ping_op::on_ping_result(std::uint64_t /*cookie*/, const ping_result& result) {
    m_result = result;
    m_done = true;
    m_slot = no_slot;
    // Resumed here, not queued: between a delivery and a later resumption
    // the task could be destroyed, leaving a handle to a freed frame.
    m_waiter.resume();
}

// -------------------------------------------------------------- sleep_op

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

// ------------------------------------------------------- send_buffer_pool

std::byte* send_buffer_pool::get(std::size_t size) {
    if (size > chunk_size)
        return new std::byte[size];
    if (m_free.empty()) {
        constexpr std::size_t per_block = 256;
        m_blocks.push_back(std::unique_ptr<std::byte[]>(new std::byte[chunk_size * per_block]));
        std::byte* base = m_blocks.back().get();
        for (std::size_t i = per_block; i-- > 0;)
            m_free.push_back(base + i * chunk_size);
    }
    std::byte* p = m_free.back();
    m_free.pop_back();
    return p;
}

void send_buffer_pool::put(std::byte* p, std::size_t size) noexcept {
    if (p == nullptr)
        return;
    if (size > chunk_size) {
        delete[] p;
        return;
    }
    m_free.push_back(p);
}

send_buffer_pool::~send_buffer_pool() = default;

// ------------------------------------------------------------ engine_core

engine_core::engine_core(engine_config config) : m_config(std::move(config)) {
    validate(m_config);
    if (m_config.log.sink)
        m_log_levels = m_config.log.levels;
    std::array<std::uint64_t, 2> key{};
    if (::getrandom(key.data(), sizeof key, 0) != static_cast<ssize_t>(sizeof key)) {
        // getrandom(2) cannot fail for 16 bytes once the pool is initialised;
        // fall back to the clock rather than to a fixed key.
        key[0] = static_cast<std::uint64_t>(clock_ns(CLOCK_REALTIME));
        key[1] = static_cast<std::uint64_t>(clock_ns(CLOCK_MONOTONIC)) ^ ::getpid();
    }
    m_key = {key[0], key[1]};
    m_raw_identifier = static_cast<std::uint16_t>(m_key.k0 >> 48 ^ m_key.k1);
    m_drop_rng.seed(m_config.fake_drop_seed);
    m_drop = std::bernoulli_distribution(m_config.fake_drop_probability);
    m_pending_sends.reserve(m_config.send_batch);
}

engine_core::~engine_core() {
    stop();
    teardown();
}

void engine_core::log(log_component c, log_level l, std::string_view message) const {
    if (!m_config.log.sink)
        return;
    // The engine logs from the middle of a batch of completions: a sink's
    // exception must not cut it short (run() rethrows it at its end).
    try {
        m_config.log.sink(c, l, message);
    } catch (...) {
        if (!m_spawn_exception)
            m_spawn_exception = std::current_exception();
    }
}

std::int64_t engine_core::now_mono() const noexcept {
    return clock_ns(CLOCK_MONOTONIC);
}

std::optional<socket_mode> engine_core::socket_kind(ip_family family) const noexcept {
    const family_state& fs = m_families[family_index(family)];
    if (fs.socket.fd < 0)
        return std::nullopt;
    return fs.socket.kind;
}

bool engine_core::ensure_ring() {
    if (m_ring_ready)
        return true;
    if (m_ring_error)
        return false;
    io_uring_params p{};
    // One thread submits (SINGLE_ISSUER), and completions are processed only
    // when we ask for events (DEFER_TASKRUN, Linux 6.1): no interrupts of the
    // loop, and CQEs arrive in batches. TASKRUN_FLAG lets liburing see that
    // deferred work is pending. The CQ is larger than the SQ because every
    // request has a CQE and replies add one each.
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
              IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
    p.cq_entries = std::min<std::uint32_t>(m_config.queue_depth * 4, 65536);
    int rc = io_uring_queue_init_params(m_config.queue_depth, &m_ring, &p);
    if (rc == -EINVAL) {
        ICMPENGINE_LOG(ring, warn,
                       "io_uring flags refused (kernel older than 6.1?); retrying "
                       "without DEFER_TASKRUN");
        p = {};
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = std::min<std::uint32_t>(m_config.queue_depth * 4, 65536);
        rc = io_uring_queue_init_params(m_config.queue_depth, &m_ring, &p);
    }
    if (rc < 0) {
        m_ring_error = (rc == -ENOSYS || rc == -EPERM || rc == -ENOMEM)
                           ? make_error_code(errc::io_uring_unavailable)
                           : std::error_code(-rc, std::system_category());
        ICMPENGINE_LOG(ring, error, "io_uring_queue_init({}): {}: {}", m_config.queue_depth,
                       std::strerror(-rc), m_ring_error.message());
        return false;
    }
    if (!(p.features & IORING_FEAT_NODROP))
        ICMPENGINE_LOG(ring, warn, "kernel lacks IORING_FEAT_NODROP: CQ overflow loses events");
    io_uring_register_ring_fd(&m_ring); // an optimisation; fine if refused
    m_ring_ready = true;
    ICMPENGINE_LOG(ring, info, "io_uring ready: sq {} cq {} flags {:#x}", p.sq_entries,
                   p.cq_entries, p.flags);
    return true;
}

void engine_core::setup_buffer_ring(family_state& fs, ip_family family) {
    const unsigned entries = m_config.receive_buffers;
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    fs.buf_ring_bytes = (entries * sizeof(io_uring_buf) + page - 1) / page * page;
    void* mem = ::mmap(nullptr, fs.buf_ring_bytes, PROT_READ | PROT_WRITE,
                       MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        throw std::system_error(errno, std::system_category(), "mmap of the buffer ring");
    fs.buf_ring = static_cast<io_uring_buf_ring*>(mem);
    // liburing 2.3 has no io_uring_setup_buf_ring(): init + register by hand.
    io_uring_buf_ring_init(fs.buf_ring);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem);
    reg.ring_entries = entries;
    reg.bgid = fs.buffer_group = static_cast<std::uint16_t>(family_index(family));
    if (int rc = io_uring_register_buf_ring(&m_ring, &reg, 0); rc < 0) {
        ::munmap(mem, fs.buf_ring_bytes);
        fs.buf_ring = nullptr;
        throw std::system_error(-rc, std::system_category(), "io_uring_register_buf_ring");
    }
    const std::size_t size = m_config.receive_buffer_size;
    // Not value-initialised: pages are touched only as the kernel fills them.
    fs.buffers.reset(new std::byte[entries * size]);
    const int mask = io_uring_buf_ring_mask(entries);
    for (unsigned i = 0; i < entries; ++i)
        io_uring_buf_ring_add(fs.buf_ring, fs.buffers.get() + i * size, static_cast<unsigned>(size),
                              static_cast<unsigned short>(i), mask, static_cast<int>(i));
    io_uring_buf_ring_advance(fs.buf_ring, static_cast<int>(entries));

    fs.recv_msg = {};
    // In each buffer the kernel lays out io_uring_recvmsg_out (16 bytes), the
    // name, the control messages, the payload. A name area of 32 rather than
    // sizeof(sockaddr_in6) == 28 keeps the cmsghdrs 8-byte aligned.
    static_assert(recv_name_size >= sizeof(sockaddr_in6) && recv_name_size % 8 == 0);
    fs.recv_msg.msg_namelen = recv_name_size;
    fs.recv_msg.msg_controllen = recv_control_size;
}

family_state* engine_core::ensure_family(ip_family family) {
    family_state& fs = m_families[family_index(family)];
    if (fs.opened)
        return &fs;
    fs.opened = true;
    socket_open_result r = open_icmp_socket(family, m_config);
    if (r.error) {
        fs.open_error = r.error;
        ICMPENGINE_LOG(sockets, error, "{}", r.message);
        return &fs;
    }
    fs.socket = r.socket;
    ICMPENGINE_LOG(sockets, info, "{} ICMP socket fd {}: {} mode, SO_RCVBUF {}",
                   family == ip_family::v4 ? "IPv4" : "IPv6", fs.socket.fd,
                   fs.socket.kind == socket_mode::raw ? "raw" : "datagram",
                   fs.socket.receive_buffer);
    if (fs.socket.receive_buffer_capped)
        ICMPENGINE_LOG(sockets, warn,
                       "SO_RCVBUF is {} bytes, less than the {} asked for (net.core.rmem_max; "
                       "SO_RCVBUFFORCE needs CAP_NET_ADMIN): bursts may overflow it",
                       fs.socket.receive_buffer, wanted_receive_buffer(m_config));
    try {
        setup_buffer_ring(fs, family);
    } catch (const std::system_error& e) {
        ICMPENGINE_LOG(ring, error, "receive buffers: {}", e.what());
        ::close(fs.socket.fd);
        fs.socket.fd = -1;
        fs.open_error = e.code();
        return &fs;
    }
    // Registered ("fixed") files spare every request the kernel's fget/fput
    // of the socket: about 1 % of a loopback fan-out's CPU time. Plain fds
    // if the kernel refuses (IORING_REGISTER_FILES, sparse since Linux 5.19).
    if (!m_files_registered)
        m_files_registered = io_uring_register_files_sparse(&m_ring, 2) == 0;
    if (m_files_registered)
        fs.fixed_file =
            io_uring_register_files_update(&m_ring, static_cast<unsigned>(family_index(family)),
                                           &fs.socket.fd, 1) == 1;
    arm_recv(family);
    return &fs;
}

void engine_core::use_fixed_file(io_uring_sqe* sqe, ip_family family) const noexcept {
    const std::size_t i = family_index(family);
    if (m_families[i].fixed_file) {
        sqe->fd = static_cast<int>(i);
        sqe->flags |= IOSQE_FIXED_FILE;
    }
}

std::error_code engine_core::open(ip_family family) {
    if (m_stopping)
        return make_error_code(errc::stopped);
    if (!ensure_ring())
        return m_ring_error;
    return ensure_family(family)->open_error;
}

io_uring_sqe* engine_core::get_sqe() {
    io_uring_sqe* sqe = nullptr;
    if (m_faults.sq_full > 0)
        --m_faults.sq_full; // as if the SQ were full
    else
        sqe = io_uring_get_sqe(&m_ring);
    while (sqe == nullptr) {
        ++m_recoveries.sq_full;
        // A full SQ is flushed and retried, never an error for the caller.
        // Pending sends get their send time first: they are submitted now.
        flush_sends(false);
        submit(false);
        sqe = io_uring_get_sqe(&m_ring);
    }
    return sqe;
}

void engine_core::submit(bool wait) {
    for (;;) {
        int rc = -EBUSY;
        if (m_faults.submit_busy > 0)
            --m_faults.submit_busy; // as if the CQ overflow backlog were full
        else
            rc = wait ? io_uring_submit_and_wait(&m_ring, 1)
                      : io_uring_submit_and_get_events(&m_ring);
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

// ------------------------------------------------------------ ping start

task<ping_result> engine_core::ping(ip_address to, std::chrono::nanoseconds timeout,
                                    ping_options options) {
    ping_op op(*this, to, timeout.count(), options.payload_size);
    co_return co_await op;
}

std::optional<ping_result> engine_core::refusal(const ip_address& target) {
    auto refused = [&](ping_status status, std::error_code error) {
        ping_result r;
        r.from = target;
        r.status = status;
        r.error = error;
        ++m_stats.sent;
        ++(status == ping_status::cancelled ? m_stats.cancelled : m_stats.send_errors);
        return r;
    };
    if (m_stopping)
        return refused(ping_status::cancelled, make_error_code(errc::stopped));
    if (!ensure_ring())
        return refused(ping_status::send_error, m_ring_error);
    const family_state* fs = ensure_family(target.family());
    if (fs->socket.fd < 0)
        return refused(ping_status::send_error, fs->open_error);
    return std::nullopt;
}

bool engine_core::start(ping_op& op) {
    if (std::optional<ping_result> r = refusal(op.m_request.target)) {
        op.m_result = *r;
        op.m_done = true;
        return false; // do not suspend: the result is ready
    }
    if (m_slots_in_use >= m_config.max_in_flight || !m_waiting.empty())
        enqueue(op.m_request, false);
    else
        launch(op.m_request);
    return true;
}

void engine_core::start(const ping_request& request) {
    if (std::optional<ping_result> r = refusal(request.target)) {
        deliver(request.handler, request.cookie, *r); // delivered from run(), never from here
        return;
    }
    if (m_slots_in_use >= m_config.max_in_flight || !m_waiting.empty())
        enqueue(request, false);
    else
        launch(request);
}

void engine_core::enqueue(const ping_request& request, bool front) {
    if (front)
        m_waiting.push_front(request);
    else
        m_waiting.push_back(request);
    if (request.slot_out != nullptr)
        *request.slot_out = queued_slot;
    ++m_stats.waiting;
}

bool engine_core::tokenless_conflict(std::uint32_t index, const ip_address& target) const noexcept {
    // Replies without a token are matched by (source, sequence), and the
    // sequence is the slot index modulo 2^16: two pings in flight to the same
    // host must not share it.
    for (std::size_t i = index & 0xffffu; i < m_slots.size(); i += 65536)
        if (i != index && m_slots[i].state != slot_state::free &&
            same_host(m_slots[i].target, target))
            return true;
    return false;
}

std::uint32_t engine_core::alloc_slot(const ip_address& target, bool has_token) {
    // Grow to 2^16 slots before reusing any: sequence numbers (slot index
    // modulo 2^16) then advance with every ping as users of ping expect, and
    // a late reply rarely finds its slot reused.
    const bool grow = m_slots.size() < std::min<std::size_t>(65536, m_config.max_in_flight);
    for (std::size_t tries = grow ? 0 : m_free_slots.size(); tries > 0; --tries) {
        std::uint32_t index = m_free_slots.front();
        m_free_slots.pop_front();
        if (has_token || !tokenless_conflict(index, target))
            return index;
        m_free_slots.push_back(index);
    }
    if (m_slots.size() >= m_config.max_in_flight)
        return no_slot;
    const auto index = static_cast<std::uint32_t>(m_slots.size());
    if (!has_token && tokenless_conflict(index, target))
        return no_slot;
    m_slots.emplace_back();
    // Room in the heap for every slot, so that a push never allocates. Grown
    // geometrically: reserving a fixed step ahead reallocated the heap for
    // every new slot while it was empty (on loopback, most of a fan-out) and
    // copied O(n^2) entries on the way to a million slots.
    if (index == 0 || (index >= 4096 && std::has_single_bit(index)))
        m_heap.reserve(std::max<std::size_t>(2 * std::size_t{index}, 8192));
    return index;
}

void engine_core::launch(const ping_request& request, bool front) {
    const bool has_token = request.payload_size >= token_size;
    const std::uint32_t index = alloc_slot(request.target, has_token);
    if (index == no_slot) {
        // Only for token-less pings whose every free sequence number is taken
        // by another ping to the same host: wait like any backpressure.
        enqueue(request, front);
        return;
    }
    slot& s = m_slots[index];
    s.handler = request.handler;
    s.cookie = request.cookie;
    s.target = request.target;
    ++s.generation;
    s.prev_outcome = s.outcome;
    s.outcome = slot_outcome::none;
    s.payload_size = request.payload_size;
    s.has_token = has_token;
    s.fake_dropped = false;
    s.state = slot_state::in_flight;
    s.send_pending = false;
    if (request.slot_out != nullptr)
        *request.slot_out = index;
    ++m_slots_in_use;
    ++m_stats.sent;
    ++m_stats.in_flight;

    const auto sequence = static_cast<std::uint16_t>(index & 0xffffu);

    if (m_config.fake_drop_probability > 0.0 && m_drop(m_drop_rng)) {
        s.fake_dropped = true;
        ++m_stats.fake_dropped;
        m_pending_sends.push_back({index, request.timeout_ns});
        ICMPENGINE_LOG(matching, trace, "fake-dropped ping slot {} to {}", index,
                       request.target.to_string());
        if (m_pending_sends.size() >= m_config.send_batch)
            flush_sends(true);
        return;
    }

    const family_state& fs = m_families[family_index(request.target.family())];
    const bool raw = fs.socket.kind == socket_mode::raw;
    const std::size_t packet_size = icmp_header_size + request.payload_size;
    std::byte* buffer = m_send_buffers.get(sockaddr_room + packet_size);
    const socklen_t address_length = fill_sockaddr(request.target, buffer);
    const echo_token token{
        index, s.generation,
        ping_tag(index, s.generation, sequence, request.target, request.payload_size)};
    build_echo_request(std::span<std::byte>(buffer + sockaddr_room, packet_size),
                       request.target.family(), raw ? m_raw_identifier : 0, sequence,
                       request.payload_size, has_token ? &token : nullptr,
                       raw && request.target.is_v4());
    s.send_buffer = buffer;
    s.send_pending = true;
    ++m_sends_in_kernel;

    s.send_attempts = 1;
    s.address_length = static_cast<std::uint8_t>(address_length);
    prep_send(index, fs.socket.fd);
    m_pending_sends.push_back({index, request.timeout_ns});
    if (m_pending_sends.size() >= m_config.send_batch)
        flush_sends(true);
}

void engine_core::prep_send(std::uint32_t index, int fd) {
    const slot& s = m_slots[index];
    io_uring_sqe* sqe = get_sqe();
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
        io_uring_sqe_set_data64(sqe, encode(op_kind::send, index));
        return;
    }
    io_uring_prep_send(sqe, fd, s.send_buffer + sockaddr_room, icmp_header_size + s.payload_size,
                       0);
    // sendto(2) semantics: liburing 2.3 lacks io_uring_prep_sendto (2.4), so
    // the destination is filled in by hand; IORING_OP_SEND reads it from
    // addr2/addr_len since Linux 6.0.
    sqe->addr2 = reinterpret_cast<std::uintptr_t>(s.send_buffer);
    sqe->addr_len = s.address_length;
    io_uring_sqe_set_data64(sqe, encode(op_kind::send, index));
    use_fixed_file(sqe, s.target.family());
}

void engine_core::resend(std::uint32_t index) {
    const slot& s = m_slots[index];
    ICMPENGINE_LOG(sockets, debug, "resending to {} (attempt {}): the socket held an error",
                   s.target.to_string(), s.send_attempts);
    prep_send(index, m_families[family_index(s.target.family())].socket.fd);
    // Its send time is taken again at the flush; its deadline stays.
    m_pending_sends.push_back({index, -1});
}

void engine_core::flush_sends(bool submit_now) {
    if (!m_pending_sends.empty()) {
        // The send time of every request in this batch: taken as late as
        // possible, just before the io_uring_enter that submits them. The
        // kernel sends them in SQ order within that enter, so a request's RTT
        // is over-estimated by the time the kernel spent on the requests
        // before it in the batch (bounded by send_batch).
        const std::int64_t now = now_mono();
        for (const pending_send& p : m_pending_sends) {
            slot& s = m_slots[p.slot];
            s.tx_mono = now;
            if (p.timeout_ns < 0)
                continue; // a resend: its deadline is in the heap already
            s.deadline = now + p.timeout_ns;
            m_heap.push(p.slot, s.deadline);
        }
        m_pending_sends.clear();
    }
    if (submit_now) {
        reconcile_timer();
        submit(false);
        // Long bursts of pings are started without returning to the loop:
        // reap here too, so that receive buffers go back to the kernel and a
        // receive that ran out of them is re-armed before replies pile up in
        // the socket (and before the CQ overflows).
        if (m_faults.skip_harvests > 0) {
            --m_faults.skip_harvests;
            return;
        }
        harvest();
        rearm_receives();
    }
}

void engine_core::rearm_receives() {
    for (std::size_t i = 0; i < m_families.size(); ++i) {
        family_state& fs = m_families[i];
        if (fs.socket.fd < 0)
            continue;
        if (!fs.recv_armed)
            arm_recv(family_at(i));
        if (fs.err_again && !fs.err_reading)
            read_errqueue(family_at(i));
    }
}

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

// --------------------------------------------------------------- the loop

void engine_core::drive(std::coroutine_handle<> root) {
    if (m_drive_depth > 0)
        throw std::logic_error("engine::run: already running (run() does not nest)");
    if (m_stop_depth > 0)
        throw std::logic_error("engine::run: called from inside stop()");
    ++m_drive_depth;
    struct depth_guard {
        int& depth;
        ~depth_guard() { --depth; }
    } guard{m_drive_depth};

    m_ready.push_back(root);
    while (!root.done()) {
        run_ready();
        if (root.done())
            break;
        sweep_spawned();
        const bool pending = m_stats.in_flight > 0 || m_sends_in_kernel > 0 ||
                             !m_pending_sends.empty() || !m_waiting.empty() || !m_ready.empty() ||
                             !m_deliveries.empty() || !m_sleep_heap.empty();
        if (!pending)
            throw std::logic_error("engine::run: the task waits for something this engine "
                                   "does not drive (no ping in flight)");
        turn(true);
    }
    sweep_spawned();
    if (m_spawn_exception)
        std::rethrow_exception(std::exchange(m_spawn_exception, nullptr));
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
    if (!m_ring_ready)
        return;
    rearm_receives();
    for (const std::uint32_t index : std::exchange(m_deferred_resends, {})) {
        if (m_slots[index].state == slot_state::in_flight)
            resend(index);
        else
            handle_send(index, -ECANCELED); // ended meanwhile: nothing to send
    }
    flush_sends(false);
    reconcile_timer();
    const bool block = may_block && m_ready.empty() && m_deliveries.empty() &&
                       (m_stats.in_flight > 0 || m_sends_in_kernel > 0 || !m_sleep_heap.empty());
    submit(block);
    harvest();
    expire();
    expire_sleepers();
    admit_waiting();
}

void engine_core::harvest() {
    if (!m_ring_ready)
        return;
    // Copy a batch of CQEs, hand the CQ slots back to the kernel, then
    // process: processing never resumes a coroutine (resumed coroutines
    // would queue new SQEs mid-batch), it only queues them on m_ready.
    constexpr unsigned batch_size = 256;
    if (IO_URING_READ_ONCE(*m_ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)
        ++m_recoveries.cq_overflow; // liburing flushes the backlog as we peek
    for (;;) {
        io_uring_cqe* cqes[batch_size];
        const unsigned n = io_uring_peek_batch_cqe(&m_ring, cqes, batch_size);
        if (n == 0)
            break;
        std::array<completion, batch_size> batch;
        for (unsigned i = 0; i < n; ++i)
            batch[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
        io_uring_cq_advance(&m_ring, n);
        // SO_TIMESTAMPNS stamps are CLOCK_REALTIME; deadlines and send times
        // are CLOCK_MONOTONIC. One offset per batch converts. The time is
        // also what every reply of the batch is checked against (and the
        // RTT of one without a usable stamp): each was received before its
        // CQE was posted, and so before the peek. Per batch, not per
        // harvest: peeking again may run deferred work and post new CQEs.
        // The wall clock is read first: the offset then errs towards a later
        // receive time (a longer RTT), never towards one shorter than real.
        const std::int64_t realtime = clock_ns(CLOCK_REALTIME);
        m_harvest_mono = now_mono();
        const std::int64_t realtime_offset = realtime - m_harvest_mono;
        for (unsigned i = 0; i < n; ++i)
            handle(batch[i], realtime_offset);
        for (family_state& fs : m_families) {
            if (fs.buffers_to_return != 0) {
                io_uring_buf_ring_advance(fs.buf_ring, static_cast<int>(fs.buffers_to_return));
                fs.buffers_to_return = 0;
            }
        }
        if (n < batch_size)
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
    }
    ICMPENGINE_LOG(ring, error, "unknown completion user_data {:#x} res {}", c.user_data, c.res);
}

namespace {

// Errors an ICMP error leaves in sk_err (icmp_err_convert[],
// icmpv6_err_convert()). With IP_RECVERR, ping_err() sets sk_err for every
// ICMP error, and the socket's next sendmsg() - to any target - fails with
// it (sock_alloc_send_pskb() checks sock_error()). Such a failure says
// nothing about this request: send it again.
bool maybe_stale_socket_error(int err) noexcept {
    switch (err) {
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENOPROTOOPT:
    case ECONNREFUSED:
    case EMSGSIZE:
    case EOPNOTSUPP:
    case EACCES:
    case EHOSTDOWN:
    case EPROTO:
        return true;
    default:
        return false;
    }
}

// Out of socket buffer or memory for the moment: worth another try.
bool transient_send_error(int err) noexcept {
    return err == EAGAIN || err == ENOBUFS || err == EINTR;
}

// A request whose sends fail for lack of buffers is given up after 4
// attempts. One whose send failed with an error that an ICMP error about
// another request may have left in sk_err is sent again as long as the kernel
// has a route to its target (check_route) and its deadline has not passed:
// during a burst of ICMP errors (a fleet with many unreachable targets) every
// error poisons one send, and a healthy request can be hit many times. The
// cap only stops a loop if the route check and the sends ever disagreed.
constexpr std::uint8_t max_transient_attempts = 4;
constexpr std::uint8_t max_stale_attempts = 100;

} // namespace

void engine_core::handle_send(std::uint32_t index, std::int32_t res) {
    slot& s = m_slots[index];
    if (res < 0 && s.state == slot_state::in_flight) {
        family_state& fs = m_families[family_index(s.target.family())];
        bool stale = fs.socket.kind == socket_mode::datagram && maybe_stale_socket_error(-res);
        if (stale) {
            // Genuine (no route: fail with the route lookup's own error) or
            // left behind by an ICMP error about another request (send again)?
            if (const int route = check_route(fs.route_probe_fd, s.target, m_config); route != 0) {
                res = -route;
                stale = false;
            }
        }
        const bool transient = transient_send_error(-res);
        if ((stale && s.send_attempts < max_stale_attempts) ||
            (transient && s.send_attempts < max_transient_attempts)) {
            ++s.send_attempts;
            ++m_recoveries.send_retries;
            if (stale)
                fs.err_again = true; // the error that poisoned it is in the error queue
            // Sent again next turn, after the error queue was read.
            m_deferred_resends.push_back(index);
            return;
        }
    }
    s.send_pending = false;
    --m_sends_in_kernel;
    m_send_buffers.put(s.send_buffer, sockaddr_room + icmp_header_size + s.payload_size);
    s.send_buffer = nullptr;
    if (res < 0) {
        ICMPENGINE_LOG(sockets, debug, "send to {} failed: {}", s.target.to_string(),
                       std::strerror(-res));
        family_state& fs = m_families[family_index(s.target.family())];
        if (fs.socket.kind == socket_mode::datagram)
            fs.err_again = true; // a local error may also sit in the error queue
        if (s.state == slot_state::in_flight) {
            ping_result r = result_for(index);
            r.error = std::error_code(-res, std::system_category());
            end(index, ping_status::send_error, std::move(r));
            return;
        }
    }
    if (s.state == slot_state::ended)
        finish(index);
}

void engine_core::return_buffer(family_state& fs, unsigned short bid) noexcept {
    io_uring_buf_ring_add(
        fs.buf_ring, fs.buffers.get() + std::size_t{bid} * m_config.receive_buffer_size,
        m_config.receive_buffer_size, bid, io_uring_buf_ring_mask(m_config.receive_buffers),
        static_cast<int>(fs.buffers_to_return++));
}

void engine_core::arm_recv(ip_family family) {
    family_state& fs = m_families[family_index(family)];
    ++m_recoveries.receive_rearms;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_recvmsg_multishot(sqe, fs.socket.fd, &fs.recv_msg, MSG_TRUNC);
    use_fixed_file(sqe, family);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = fs.buffer_group;
    io_uring_sqe_set_data64(sqe, encode(op_kind::recv, family_index(family)));
    fs.recv_armed = true;
}

void engine_core::read_errqueue(ip_family family) {
    family_state& fs = m_families[family_index(family)];
    fs.err_iov = {fs.err_data.data(), fs.err_data.size()};
    fs.err_msg = {};
    fs.err_msg.msg_name = &fs.err_name;
    fs.err_msg.msg_namelen = sizeof fs.err_name;
    fs.err_msg.msg_iov = &fs.err_iov;
    fs.err_msg.msg_iovlen = 1;
    fs.err_msg.msg_control = fs.err_control.data();
    fs.err_msg.msg_controllen = fs.err_control.size();
    io_uring_sqe* sqe = get_sqe();
    // MSG_DONTWAIT: complete with -EAGAIN when the queue is empty instead of
    // waiting for POLLERR (which would also wake on every normal reply).
    io_uring_prep_recvmsg(sqe, fs.socket.fd, &fs.err_msg, MSG_ERRQUEUE | MSG_DONTWAIT);
    use_fixed_file(sqe, family);
    io_uring_sqe_set_data64(sqe, encode(op_kind::errqueue, family_index(family)));
    fs.err_reading = true;
    fs.err_again = false;
}

void engine_core::handle_recv(ip_family family, const completion& c, std::int64_t realtime_offset) {
    family_state& fs = m_families[family_index(family)];
    if (c.flags & IORING_CQE_F_BUFFER) {
        const auto bid = static_cast<unsigned short>(c.flags >> IORING_CQE_BUFFER_SHIFT);
        std::byte* buffer = fs.buffers.get() + std::size_t{bid} * m_config.receive_buffer_size;
        if (c.res > 0) {
            io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buffer, c.res, &fs.recv_msg);
            if (out == nullptr) {
                ++m_stats.invalid_packets;
            } else {
                std::int64_t rx_mono = 0;
                int ttl = 0;
                for (cmsghdr* cm = io_uring_recvmsg_cmsg_firsthdr(out, &fs.recv_msg); cm != nullptr;
                     cm = io_uring_recvmsg_cmsg_nexthdr(out, &fs.recv_msg, cm)) {
                    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                        timespec ts{};
                        std::memcpy(&ts, CMSG_DATA(cm), sizeof ts);
                        rx_mono =
                            std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec - realtime_offset;
                    } else if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TTL) ||
                               (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_HOPLIMIT)) {
                        std::memcpy(&ttl, CMSG_DATA(cm), sizeof ttl);
                    }
                }
                const auto* payload =
                    static_cast<const std::byte*>(io_uring_recvmsg_payload(out, &fs.recv_msg));
                const unsigned received = io_uring_recvmsg_payload_length(out, c.res, &fs.recv_msg);
                // With MSG_TRUNC, raw sockets report the full length; ping
                // sockets only the copied one: then the full length is unknown.
                const bool length_unknown =
                    (out->flags & MSG_TRUNC) != 0 && out->payloadlen <= received;
                process_message(family, std::span<const std::byte>(payload, received),
                                length_unknown ? unknown_length : out->payloadlen,
                                static_cast<const sockaddr*>(io_uring_recvmsg_name(out)),
                                out->namelen, rx_mono, ttl);
            }
        }
        if (m_faults.hold_receive_buffers > 0) {
            --m_faults.hold_receive_buffers;
            m_held_buffers[family_index(family)].push_back(bid);
        } else {
            // Back to the kernel at once; published at the end of this batch.
            return_buffer(fs, bid);
        }
        if (m_faults.receive_error > 0 && (c.flags & IORING_CQE_F_MORE) && !fs.recv_erroring) {
            // End this receive as a socket error would: cancel it, and
            // report its final -ECANCELED as -ENETDOWN below.
            --m_faults.receive_error;
            fs.recv_erroring = true;
            io_uring_sqe* sqe = get_sqe();
            io_uring_prep_cancel64(sqe, encode(op_kind::recv, family_index(family)), 0);
            io_uring_sqe_set_data64(sqe, encode(op_kind::cancel, 0));
        }
    }
    if (!(c.flags & IORING_CQE_F_MORE)) {
        std::int32_t res = c.res;
        if (fs.recv_erroring && res == -ECANCELED) {
            fs.recv_erroring = false;
            res = -ENETDOWN;
        }
        if (res == -ENOBUFS) {
            ++m_recoveries.receive_enobufs;
            // Whatever the fault plan held goes back now.
            for (unsigned short held : m_held_buffers[family_index(family)])
                return_buffer(fs, held);
            m_held_buffers[family_index(family)].clear();
        } else if (res < 0 && res != -ECANCELED) {
            ++m_recoveries.receive_errors;
        }
        // The multishot receive ended: out of buffers (-ENOBUFS), a pending
        // socket error (an ICMP error with IP_RECVERR sets sk_err), or
        // cancellation. Re-armed in the next turn unless we are tearing down.
        fs.recv_armed = false;
        if (res < 0 && res != -ENOBUFS && res != -ECANCELED &&
            fs.socket.kind == socket_mode::datagram)
            fs.err_again = true;
        ICMPENGINE_LOG(ring, debug, "multishot receive ended: {}",
                       res < 0 ? std::strerror(-res) : "no error");
    }
    if (fs.buffers_to_return != 0 && !(c.flags & IORING_CQE_F_MORE)) {
        // Publish before the receive is armed again.
        io_uring_buf_ring_advance(fs.buf_ring, static_cast<int>(fs.buffers_to_return));
        fs.buffers_to_return = 0;
    }
}

void engine_core::handle_errqueue(ip_family family, std::int32_t res,
                                  std::int64_t realtime_offset) {
    family_state& fs = m_families[family_index(family)];
    fs.err_reading = false;
    if (res == -EAGAIN)
        return; // drained
    if (res < 0) {
        if (res != -ECANCELED)
            ICMPENGINE_LOG(sockets, warn, "reading the error queue: {}", std::strerror(-res));
        return;
    }
    fs.err_again = true; // there may be more

    const sock_extended_err* ee = nullptr;
    std::int64_t rx_mono = 0;
    msghdr& msg = fs.err_msg;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
        if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_RECVERR) ||
            (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_RECVERR)) {
            ee = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(cm));
        } else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts{};
            std::memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            rx_mono = std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec - realtime_offset;
        }
    }
    if (ee == nullptr) {
        ++m_stats.invalid_packets;
        return;
    }
    const ip_address destination =
        address_from(reinterpret_cast<const sockaddr*>(&fs.err_name), msg.msg_namelen);
    icmp_message m;
    const auto size = std::min<std::size_t>(static_cast<std::size_t>(res), fs.err_data.size());
    if (parse_quoted_echo(std::span<const std::byte>(fs.err_data.data(), size), family, m) !=
        parse_error::none) {
        ++m_stats.foreign_packets;
        return;
    }
    if (ee->ee_origin == SO_EE_ORIGIN_ICMP || ee->ee_origin == SO_EE_ORIGIN_ICMP6) {
        // The offender's sockaddr follows the extended error (SO_EE_OFFENDER).
        const auto* offender = reinterpret_cast<const sockaddr*>(ee + 1);
        const std::size_t room =
            fs.err_control.size() -
            static_cast<std::size_t>(reinterpret_cast<const std::byte*>(offender) -
                                     fs.err_control.data());
        match_error(family, m, destination, address_from(offender, room), ee->ee_type, ee->ee_code,
                    rx_mono, false);
    } else if (ee->ee_origin == SO_EE_ORIGIN_LOCAL) {
        match_error(family, m, destination, destination, 0, 0, rx_mono, true);
    } else {
        ++m_stats.foreign_packets;
    }
}

// --------------------------------------------------------------- matching

void engine_core::process_message(ip_family family, std::span<const std::byte> payload,
                                  std::size_t full_length, const sockaddr* name,
                                  std::size_t name_length, std::int64_t rx_mono, int ttl) {
    const family_state& fs = m_families[family_index(family)];
    const bool raw = fs.socket.kind == socket_mode::raw;
    ip_address source = address_from(name, name_length);
    // Only a whole raw IPv4 packet can have its ICMP checksum verified (the
    // kernel verified it for every other socket kind).
    bool verify_checksum = raw && family == ip_family::v4;
    if (raw && family == ip_family::v4) {
        // Raw IPv4 sockets deliver the IP header too.
        ipv4_header ip;
        parse_error e = parse_ipv4_header(payload, ip);
        const bool truncated_receive =
            full_length == unknown_length || full_length > payload.size();
        if (truncated_receive)
            verify_checksum = false; // the token and payload checks remain
        if (e == parse_error::truncated && truncated_receive) {
            // The receive buffer cut the packet: its total length runs past
            // what we hold, but the header itself may be whole. Parse a copy
            // of the header that claims no more than itself.
            const std::size_t header = (std::to_integer<std::size_t>(payload[0]) & 0x0f) * 4;
            std::array<std::byte, 60> copy{};
            if (header >= ipv4_min_header_size && header <= payload.size()) {
                std::copy_n(payload.begin(), header, copy.begin());
                copy[2] = std::byte(header >> 8);
                copy[3] = std::byte(header & 0xff);
                e = parse_ipv4_header(std::span<const std::byte>(copy.data(), header), ip);
            }
        }
        if (e != parse_error::none) {
            ++m_stats.invalid_packets;
            return;
        }
        source = ip.source;
        ttl = ip.ttl;
        payload = payload.subspan(ip.header_size);
        if (full_length != unknown_length)
            full_length = full_length >= ip.header_size ? full_length - ip.header_size : 0;
    }
    icmp_message m;
    if (const parse_error e = parse_icmp(payload, family, verify_checksum, m);
        e != parse_error::none) {
        ++m_stats.invalid_packets;
        ICMPENGINE_LOG(matching, debug, "invalid packet from {}: parse error {}",
                       source.to_string(), static_cast<int>(e));
        return;
    }
    // Raw sockets see every process's ICMP: only our identifier is ours.
    if (raw && m.kind != icmp_kind::other && m.kind != icmp_kind::echo_request &&
        m.identifier != m_raw_identifier) {
        ++m_stats.foreign_packets;
        return;
    }
    switch (m.kind) {
    case icmp_kind::echo_reply:
        match_reply(family, m, full_length, source, rx_mono, ttl);
        return;
    case icmp_kind::dest_unreachable:
    case icmp_kind::time_exceeded:
    case icmp_kind::packet_too_big:
    case icmp_kind::parameter_problem:
        if (!m.quoted_destination) {
            ++m_stats.invalid_packets;
            return;
        }
        match_error(family, m, *m.quoted_destination, source, m.type, m.code, rx_mono, false);
        return;
    case icmp_kind::echo_request:
    case icmp_kind::other:
        ++m_stats.foreign_packets;
        return;
    }
}

std::optional<std::uint32_t> engine_core::find_slot(const icmp_message& m, const ip_address& peer,
                                                    std::size_t payload_length, bool is_error) {
    auto count_stale = [&](slot_outcome outcome) {
        const bool duplicate = !is_error && outcome == slot_outcome::reply;
        if (duplicate)
            ++m_stats.duplicate_replies;
        else
            ++m_stats.late_replies;
        report_stray(duplicate ? stray_reply::kind::duplicate : stray_reply::kind::late, peer,
                     m.sequence);
    };
    if (m.payload.size() >= token_size) {
        const echo_token t = *read_token(m.payload);
        auto invalid = [&](const char* why) {
            ++m_stats.invalid_packets; // forged, corrupted, or not ours at all
            ICMPENGINE_LOG(matching, debug, "{} from {} seq {}", why, peer.to_string(), m.sequence);
            return std::nullopt;
        };
        if (t.slot >= m_slots.size() || (t.slot & 0xffffu) != m.sequence)
            return invalid("token for no slot of ours");
        const slot& s = m_slots[t.slot];
        const bool current = t.generation == s.generation;
        // The size the request was sent with. A reply is as long as its
        // request; an ICMP error's quote and a truncated receive are not, and
        // then only the slot can say, as long as it still describes that use.
        std::size_t sent_size = payload_length;
        const bool prefix_only = is_error || payload_length == unknown_length;
        if (prefix_only) {
            if (!current) {
                // About an earlier use of a reused slot: unverifiable.
                if (is_error) {
                    count_stale(slot_outcome::other);
                    return std::nullopt;
                }
                return invalid("truncated reply to a reused slot");
            }
            sent_size = s.payload_size;
        }
        // The tag binds slot, generation, sequence, target and size: a copy
        // from another source, or of another length, fails here whatever
        // became of the slot since (even after reuse).
        if (ping_tag(t.slot, t.generation, m.sequence, peer, sent_size) != t.tag)
            return invalid("token mismatch");
        // The tag binds the address, not its scope: a link-local reply from
        // another interface than the ping went out on is not its reply.
        if (current && !same_host(s.target, peer))
            return invalid("token from another interface");
        if ((prefix_only && m.payload.size() > sent_size) ||
            !payload_matches(m.payload, sent_size, static_cast<std::uint32_t>(sent_size), &t))
            return invalid("authentic token, altered payload");
        if (current && s.state == slot_state::in_flight)
            return t.slot;
        count_stale(current                            ? s.outcome
                    : t.generation + 1 == s.generation ? s.prev_outcome
                                                       : slot_outcome::other);
        return std::nullopt;
    }

    // No token: match by peer and sequence among the slots that share the
    // sequence (index modulo 2^16). Ambiguity is refused, never guessed.
    std::optional<std::uint32_t> found;
    std::optional<slot_outcome> stale;
    for (std::size_t i = m.sequence; i < m_slots.size(); i += 65536) {
        const slot& s = m_slots[i];
        if (!same_host(s.target, peer))
            continue;
        if (s.state != slot_state::in_flight) {
            if (!s.has_token)
                stale = s.outcome;
            continue;
        }
        if (!is_error &&
            (s.has_token || (payload_length != unknown_length && s.payload_size != payload_length)))
            continue;
        // An ICMP error quoting a few payload bytes (fewer than a token) must
        // quote what this ping sent: the start of its token, or its pattern.
        if (is_error && !m.payload.empty() && !quote_matches(static_cast<std::uint32_t>(i), m))
            continue;
        if (found) {
            ++m_stats.invalid_packets;
            ICMPENGINE_LOG(matching, debug, "ambiguous token-less match for {} seq {}",
                           peer.to_string(), m.sequence);
            return std::nullopt;
        }
        found = static_cast<std::uint32_t>(i);
    }
    if (found) {
        const slot& s = m_slots[*found];
        const std::size_t full = payload_length == unknown_length ? s.payload_size : payload_length;
        if (!is_error && !payload_matches(m.payload, full, s.payload_size, nullptr)) {
            ++m_stats.invalid_packets;
            return std::nullopt;
        }
        return found;
    }
    if (stale)
        count_stale(*stale);
    else
        ++m_stats.invalid_packets;
    return std::nullopt;
}

bool engine_core::quote_matches(std::uint32_t index, const icmp_message& m) const noexcept {
    // Rebuild the start of the request this slot sent and compare the quote
    // with it, byte for byte.
    const slot& s = m_slots[index];
    const std::size_t n = std::min<std::size_t>(m.payload.size(), s.payload_size);
    if (n != m.payload.size() || n > token_size)
        return false;
    std::array<std::byte, icmp_header_size + token_size> expected{};
    const echo_token token{index, s.generation,
                           ping_tag(index, s.generation, m.sequence, s.target, s.payload_size)};
    const auto size = static_cast<std::uint32_t>(std::min<std::size_t>(s.payload_size, token_size));
    build_echo_request(expected, s.target.family(), 0, m.sequence, size,
                       s.has_token ? &token : nullptr, false);
    return std::equal(m.payload.begin(), m.payload.end(), expected.begin() + icmp_header_size);
}

std::uint64_t engine_core::ping_tag(std::uint32_t slot, std::uint32_t generation,
                                    std::uint16_t sequence, const ip_address& target,
                                    std::size_t payload_size) const noexcept {
    // token_tag over (slot, generation, sequence), keyed with the engine's
    // secret mixed with the target's address and the payload size.
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    std::memcpy(&a, target.bytes().data(), 8);
    std::memcpy(&b, target.bytes().data() + 8, 8);
    const std::uint64_t size_and_family =
        std::uint64_t{payload_size} << 1 | (target.is_v6() ? 1u : 0u);
    const token_key key{m_key.k0 ^ a, m_key.k1 ^ (b + size_and_family * 0x9e3779b97f4a7c15ull)};
    return token_tag(key, slot, generation, sequence);
}

void engine_core::report_stray(stray_reply::kind what, const ip_address& from,
                               std::uint16_t sequence) {
    if (!m_config.on_stray)
        return;
    // Called from the middle of a batch of completions: an exception must
    // not lose the rest of the batch (run() rethrows it at its end).
    try {
        m_config.on_stray(stray_reply{what, from, sequence});
    } catch (...) {
        record_spawn_exception(std::current_exception());
    }
}

void engine_core::match_reply(ip_family family, const icmp_message& m, std::size_t full_length,
                              const ip_address& source, std::int64_t rx_mono, int ttl) {
    (void)family;
    std::size_t payload_length = unknown_length;
    if (full_length != unknown_length)
        payload_length = full_length >= icmp_header_size ? full_length - icmp_header_size : 0;
    const std::optional<std::uint32_t> index = find_slot(m, source, payload_length, false);
    if (!index)
        return;
    slot& s = m_slots[*index];
    if (payload_length == unknown_length)
        payload_length = s.payload_size; // truncated, and a prefix of what we sent
    const std::int64_t now = m_harvest_mono;
    if (rx_mono <= 0 || rx_mono < s.tx_mono || rx_mono > now)
        rx_mono = now; // no usable kernel timestamp (or the wall clock stepped)
    if (rx_mono > s.deadline) {
        // Arrived after its deadline: the ping timed out, the reply is late,
        // whatever order the timer and the reply were processed in.
        ++m_stats.late_replies;
        report_stray(stray_reply::kind::late, source, m.sequence);
        end(*index, ping_status::timeout);
        return;
    }
    ping_result r = result_for(*index);
    r.rtt = std::chrono::nanoseconds(rx_mono - s.tx_mono);
    r.from = source;
    r.ttl = static_cast<std::uint8_t>(std::clamp(ttl, 0, 255));
    r.icmp_type = m.type;
    r.icmp_code = m.code;
    r.bytes = static_cast<std::uint32_t>(payload_length);
    end(*index, ping_status::reply, std::move(r));
}

void engine_core::match_error(ip_family family, const icmp_message& m,
                              const ip_address& destination, const ip_address& reporter,
                              std::uint8_t type, std::uint8_t code, std::int64_t rx_mono,
                              bool local) {
    const std::optional<std::uint32_t> index = find_slot(m, destination, 0, true);
    if (!index)
        return;
    slot& s = m_slots[*index];
    const std::int64_t now = m_harvest_mono;
    if (rx_mono <= 0 || rx_mono < s.tx_mono || rx_mono > now)
        rx_mono = now;
    if (rx_mono > s.deadline) {
        ++m_stats.late_replies;
        end(*index, ping_status::timeout);
        return;
    }
    const ping_status status = local ? ping_status::send_error : error_status(family, type, code);
    ping_result r = result_for(*index);
    r.rtt = std::chrono::nanoseconds(rx_mono - s.tx_mono);
    r.from = reporter;
    r.icmp_type = type;
    r.icmp_code = code;
    if (local)
        r.error = std::error_code(EMSGSIZE, std::system_category());
    ICMPENGINE_LOG(matching, debug, "ICMP error type {} code {} from {} for ping to {}", type, code,
                   reporter.to_string(), destination.to_string());
    end(*index, status, std::move(r));
}

// ----------------------------------------------------------- ending pings

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

void engine_core::end(std::uint32_t index, ping_status status, ping_result result) {
    slot& s = m_slots[index];
    if (s.state != slot_state::in_flight)
        return;
    m_heap.erase(index);
    s.state = slot_state::ended;
    s.outcome = status == ping_status::reply ? slot_outcome::reply : slot_outcome::other;
    --m_stats.in_flight;
    switch (status) {
    case ping_status::reply:
        ++m_stats.replies;
        break;
    case ping_status::timeout:
        ++m_stats.timeouts;
        break;
    case ping_status::unreachable:
    case ping_status::time_exceeded:
    case ping_status::packet_too_big:
    case ping_status::parameter_problem:
        ++m_stats.icmp_errors;
        break;
    case ping_status::send_error:
        ++m_stats.send_errors;
        break;
    case ping_status::cancelled:
        ++m_stats.cancelled;
        break;
    }
    if (s.handler != nullptr) {
        result.status = status;
        if (status == ping_status::timeout || status == ping_status::cancelled)
            result.rtt = std::chrono::nanoseconds(0);
        deliver(std::exchange(s.handler, nullptr), s.cookie, result);
    }
    // The kernel may still read the request's buffer until its send CQE: the
    // slot waits for it before it is reused. (The buffer is the engine's, so
    // the result need not wait.)
    if (!s.send_pending)
        finish(index);
}

void engine_core::finish(std::uint32_t index) {
    slot& s = m_slots[index];
    s.state = slot_state::free;
    m_free_slots.push_back(index);
    --m_slots_in_use;
}

void engine_core::deliver(ping_handler* handler, std::uint64_t cookie, const ping_result& result) {
    m_deliveries.push_back({handler, cookie, result});
}

void engine_core::deliver_results() {
    // Handlers may start pings, and so end others (a full SQ is flushed and
    // reaped at once): those go to m_deliveries while this batch is out.
    while (!m_deliveries.empty()) {
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
    }
}

void engine_core::admit_waiting() {
    while (!m_waiting.empty() && m_slots_in_use < m_config.max_in_flight && !m_stopping) {
        const ping_request request = m_waiting.front();
        m_waiting.pop_front();
        --m_stats.waiting;
        const std::size_t before = m_waiting.size();
        launch(request, true);
        if (m_waiting.size() > before)
            break; // it went back to waiting: no usable slot yet
    }
}

void engine_core::abandon(ping_op& op) noexcept {
    // The coroutine frame holding `op` is being destroyed while its ping is
    // still pending: the ping ends normally, with no one to tell.
    if (op.m_slot == queued_slot) {
        auto it = std::find_if(m_waiting.begin(), m_waiting.end(),
                               [&](const ping_request& r) { return r.handler == &op; });
        if (it != m_waiting.end()) {
            m_waiting.erase(it);
            --m_stats.waiting;
            return;
        }
    } else if (op.m_slot < m_slots.size() && m_slots[op.m_slot].handler == &op) {
        m_slots[op.m_slot].handler = nullptr;
        return;
    }
    // Ended (in flight, or cancelled while queued), its result not yet
    // delivered.
    drop_deliveries(op);
}

void engine_core::drop_deliveries(const ping_handler& handler) noexcept {
    for (std::vector<delivery>* v : {&m_deliveries, &m_delivering})
        for (delivery& d : *v)
            if (d.handler == &handler)
                d.handler = nullptr;
}

void engine_core::forget(const ping_handler& handler) noexcept {
    for (slot& s : m_slots)
        if (s.handler == &handler)
            s.handler = nullptr;
    const auto withdrawn =
        std::erase_if(m_waiting, [&](const ping_request& r) { return r.handler == &handler; });
    m_stats.waiting -= withdrawn;
    drop_deliveries(handler);
}

// ---------------------------------------------------------- spawn / stop

void engine_core::spawn(task<void> t) {
    const spawned s = spawn_body(this, std::move(t));
    m_spawned.push_back(s.m_handle);
    m_ready.push_back(s.m_handle); // starts at the next turn of a run()
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
        deliver(request.handler, request.cookie, r);
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
    }
    cancel_all();
    if (m_drive_depth > 0 || m_stop_depth > 0 || m_torn_down)
        return;     // the running loop delivers the cancelled; teardown comes later
    ++m_stop_depth; // a stop() from a handler or coroutine resumed below
    struct depth_guard {
        int& depth;
        ~depth_guard() { --depth; }
    } guard{m_stop_depth};
    // Resume everyone cancelled and collect every send CQE still due.
    for (;;) {
        flush_sends(false);
        run_ready();
        cancel_all();
        sweep_spawned();
        if (m_ready.empty() && m_deliveries.empty() && m_sends_in_kernel == 0)
            break;
        if (m_ring_ready)
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
    if (m_ring_ready) {
        // Cancel the multishot receives, error-queue reads and the timer, and
        // reap their final CQEs: the buffers they point to are freed below.
        io_uring_sqe* sqe = io_uring_get_sqe(&m_ring);
        if (sqe == nullptr) {
            io_uring_submit(&m_ring);
            sqe = io_uring_get_sqe(&m_ring);
        }
        if (sqe != nullptr) {
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            io_uring_sqe_set_data64(sqe, encode(op_kind::cancel, 0));
        }
        for (int round = 0; round < 100; ++round) {
            bool busy = m_timer_armed || m_sends_in_kernel > 0;
            for (const family_state& fs : m_families)
                busy = busy || fs.recv_armed || fs.err_reading;
            if (!busy)
                break;
            __kernel_timespec ts{0, 10'000'000};
            io_uring_cqe* cqe = nullptr;
            io_uring_submit_and_wait_timeout(&m_ring, &cqe, 1, &ts, nullptr);
            harvest();
        }
        io_uring_queue_exit(&m_ring);
        m_ring_ready = false;
    }
    read_overruns(); // the sockets' last count, before they close
    for (family_state& fs : m_families) {
        if (fs.buf_ring != nullptr) {
            ::munmap(fs.buf_ring, fs.buf_ring_bytes);
            fs.buf_ring = nullptr;
        }
        if (fs.socket.fd >= 0) {
            ::close(fs.socket.fd);
            fs.socket.fd = -1;
        }
        if (fs.route_probe_fd >= 0) {
            ::close(fs.route_probe_fd);
            fs.route_probe_fd = -1;
        }
    }
    for (slot& s : m_slots) {
        m_send_buffers.put(s.send_buffer, sockaddr_room + icmp_header_size + s.payload_size);
        s.send_buffer = nullptr;
    }
}

} // namespace icmpengine::detail

// ------------------------------------------------------ icmpengine::engine

namespace icmpengine {

engine::engine(engine_config config)
    : m_core(std::make_unique<detail::engine_core>(std::move(config))) {}

engine::~engine() = default;

namespace {

void check_ping(const ip_address& to, std::chrono::nanoseconds timeout,
                const ping_options& options) {
    if (timeout.count() <= 0)
        throw std::invalid_argument(fmt::format("ping to {}: timeout {} ns must be positive",
                                                to.to_string(), timeout.count()));
    if (timeout.count() > detail::max_timeout_ns)
        throw std::invalid_argument(fmt::format(
            "ping to {}: timeout {} ns is longer than ten years", to.to_string(), timeout.count()));
    if (options.payload_size > detail::max_payload_size)
        throw std::invalid_argument(fmt::format("ping to {}: payload size {} exceeds {} bytes",
                                                to.to_string(), options.payload_size,
                                                detail::max_payload_size));
}

} // namespace

task<ping_result> engine::ping(ip_address to, std::chrono::nanoseconds timeout,
                               ping_options options) {
    // Checked here, at the call, rather than when the lazy task first runs.
    check_ping(to, timeout, options);
    return m_core->ping(to, timeout, options);
}

void engine::forget(const ping_handler& handler) noexcept {
    m_core->forget(handler);
}

void engine::start_ping(ip_address to, std::chrono::nanoseconds timeout, ping_handler& handler,
                        std::uint64_t cookie, ping_options options) {
    check_ping(to, timeout, options);
    m_core->start(
        detail::ping_request{to, timeout.count(), options.payload_size, &handler, cookie, nullptr});
}

void engine::drive(std::coroutine_handle<> root) {
    m_core->drive(root);
}

namespace {
// Deadlines further out than ten years are taken as ten years: far from
// int64 overflow, and no process waits that long.
std::int64_t mono_deadline_after(std::chrono::nanoseconds remaining) noexcept {
    const std::int64_t now = detail::clock_ns(CLOCK_MONOTONIC);
    return now + std::clamp<std::int64_t>(remaining.count(), 0, detail::max_timeout_ns);
}
} // namespace

task<bool> engine::sleep_until(std::chrono::steady_clock::time_point deadline,
                               std::stop_token stop) {
    // Measured against steady_clock::now() rather than assuming its epoch is
    // CLOCK_MONOTONIC's (it is, in libstdc++ and libc++). deadline - now
    // cannot overflow once deadline > now, even for time_point::max().
    const auto now = std::chrono::steady_clock::now();
    const auto remaining =
        deadline > now ? std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now)
                       : std::chrono::nanoseconds{0};
    return m_core->sleep(mono_deadline_after(remaining), std::move(stop));
}

task<bool> engine::sleep_for(std::chrono::nanoseconds duration, std::stop_token stop) {
    return m_core->sleep(mono_deadline_after(duration), std::move(stop));
}
void engine::spawn(task<void> t) {
    m_core->spawn(std::move(t));
}
std::error_code engine::open(ip_family family) {
    return m_core->open(family);
}
void engine::stop() {
    m_core->stop();
}
bool engine::stopped() const noexcept {
    return m_core->stopped();
}
engine_stats engine::stats() const noexcept {
    return m_core->stats();
}

namespace detail {

const engine_stats& engine_core::stats() noexcept {
    read_overruns();
    return m_stats;
}

void engine_core::read_overruns() noexcept {
    // The kernel's count of packets dropped for a full receive buffer
    // (sk_drops), per socket, cumulative.
    for (family_state& fs : m_families) {
        if (fs.socket.fd < 0)
            continue; // never opened, or closed: keeps its last count
        std::array<std::uint32_t, SK_MEMINFO_VARS> meminfo{};
        socklen_t length = sizeof meminfo;
        if (::getsockopt(fs.socket.fd, SOL_SOCKET, SO_MEMINFO, meminfo.data(), &length) == 0 &&
            length > SK_MEMINFO_DROPS * sizeof(std::uint32_t))
            fs.overruns = meminfo[SK_MEMINFO_DROPS];
    }
    m_stats.receive_overruns = m_families[0].overruns + m_families[1].overruns;
}

} // namespace detail
const engine_config& engine::config() const noexcept {
    return m_core->config();
}
std::optional<socket_mode> engine::socket_kind(ip_family family) const noexcept {
    return m_core->socket_kind(family);
}

} // namespace icmpengine
