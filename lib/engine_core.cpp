// SPDX-License-Identifier: MIT
// engine_core: construction, the ring and the sockets (opened on first use),
// the counters and the log.
#include "engine_core.hpp"

#include <icmpengine/errors.hpp>

#include <cstring>
#include <ctime>
#include <fmt/format.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdexcept>
#include <sys/random.h>
#include <unistd.h>

namespace icmpengine::detail {
namespace {

bool is_power_of_two(std::uint32_t v) noexcept {
    return v != 0 && (v & (v - 1)) == 0;
}

void check_sizes(const engine_config& c) {
    auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
    if (!is_power_of_two(c.queue_depth) || c.queue_depth < 8 || c.queue_depth > 32768)
        fail(fmt::format("engine_config.queue_depth = {}: must be a power of two in 8..32768",
                         c.queue_depth));
    if (c.max_in_flight < 1 || c.max_in_flight > (1u << 24))
        fail(fmt::format("engine_config.max_in_flight = {}: must be in 1..16777216",
                         c.max_in_flight));
    if (c.reuse_slots_after < 1 || c.reuse_slots_after > 65536)
        fail(fmt::format("engine_config.reuse_slots_after = {}: must be in 1..65536",
                         c.reuse_slots_after));
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
}

void check_packet_settings(const engine_config& c) {
    auto fail = [](const std::string& what) { throw std::invalid_argument(what); };
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

engine_config validated(engine_config c) {
    check_sizes(c);
    check_packet_settings(c);
    return c;
}

/// The engine's secret for the matching tokens.
token_key random_token_key() noexcept {
    std::array<std::uint64_t, 2> key{};
    if (::getrandom(key.data(), sizeof key, 0) != static_cast<ssize_t>(sizeof key)) {
        // getrandom(2) cannot fail for 16 bytes once the pool is initialised;
        // fall back to the clock rather than to a fixed key.
        key[0] = static_cast<std::uint64_t>(clock_ns(CLOCK_REALTIME));
        key[1] = static_cast<std::uint64_t>(clock_ns(CLOCK_MONOTONIC)) ^ ::getpid();
    }
    return {key[0], key[1]};
}

// In each receive buffer the kernel lays out io_uring_recvmsg_out (16
// bytes), the name, the control messages, the payload. A name area of 32
// rather than sizeof(sockaddr_in6) == 28 keeps the cmsghdrs 8-byte aligned.
constexpr socklen_t recv_name_size = 32;
constexpr std::size_t recv_control_size = 128;
static_assert(recv_name_size >= sizeof(sockaddr_in6) && recv_name_size % 8 == 0);

} // namespace

std::int64_t clock_ns(clockid_t clock) noexcept {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

engine_core::engine_core(engine& owner, engine_config config)
    : m_owner(owner), m_config(validated(std::move(config))),
      m_slots(m_config.max_in_flight, m_config.reuse_slots_after),
      m_matcher(random_token_key(), m_config.random_payload, m_config.check_source) {
    if (m_config.log.sink)
        m_log_levels = m_config.log.levels;
    const token_key& key = m_matcher.key();
    m_raw_identifier = static_cast<std::uint16_t>(key.k0 >> 48 ^ key.k1);
    m_drop_rng.seed(m_config.fake_drop_seed);
    m_drop = std::bernoulli_distribution(m_config.fake_drop_probability);
    m_pending_sends.reserve(m_config.send_batch);
}

engine_core::~engine_core() {
    stop();
    teardown();
    // stop() resumed every ended ping's coroutine; should one still be
    // queued, its frame must not call back into this engine when destroyed.
    for (auto* v : {&m_resumes, &m_resuming})
        for (ping_op* op : *v)
            if (op != nullptr)
                op->m_resume_queued = false;
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

std::optional<socket_mode> engine_core::socket_kind(ip_family family) const noexcept {
    const family_state& fs = m_families[family_index(family)];
    if (fs.socket.fd < 0)
        return std::nullopt;
    return fs.socket.kind;
}

bool engine_core::ensure_ring() {
    if (m_ring.ready())
        return true;
    if (m_ring_error)
        return false;
    const ring_setup r = m_ring.init(m_config.queue_depth);
    if (r.fell_back)
        ICMPENGINE_LOG(ring, warn,
                       "io_uring flags refused (kernel older than 6.1?); retrying "
                       "without DEFER_TASKRUN");
    if (r.error) {
        const int e = r.errno_value;
        m_ring_error = (e == ENOSYS || e == EPERM || e == ENOMEM)
                           ? make_error_code(errc::io_uring_unavailable)
                           : r.error;
        ICMPENGINE_LOG(ring, error, "io_uring_queue_init({}): {}: {}", m_config.queue_depth,
                       std::strerror(e), m_ring_error.message());
        return false;
    }
    if (!r.no_drop)
        ICMPENGINE_LOG(ring, warn, "kernel lacks IORING_FEAT_NODROP: CQ overflow loses events");
    ICMPENGINE_LOG(ring, info, "io_uring ready: sq {} cq {} flags {:#x}", r.sq_entries,
                   r.cq_entries, r.flags);
    return true;
}

bool engine_core::open_socket(family_state& fs, ip_family family) {
    socket_open_result r = open_icmp_socket(family, m_config);
    if (r.error) {
        fs.open_error = r.error;
        ICMPENGINE_LOG(sockets, error, "{}", r.message);
        return false;
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
    return true;
}

family_state* engine_core::ensure_family(ip_family family) {
    family_state& fs = m_families[family_index(family)];
    if (fs.opened)
        return &fs;
    fs.opened = true;
    if (!open_socket(fs, family))
        return &fs;
    try {
        m_ring.setup_buffers(static_cast<std::uint16_t>(family_index(family)),
                             m_config.receive_buffers, m_config.receive_buffer_size);
    } catch (const std::system_error& e) {
        ICMPENGINE_LOG(ring, error, "receive buffers: {}", e.what());
        ::close(fs.socket.fd);
        fs.socket.fd = -1;
        fs.open_error = e.code();
        return &fs;
    }
    fs.recv_msg = {};
    fs.recv_msg.msg_namelen = recv_name_size;
    fs.recv_msg.msg_controllen = recv_control_size;
    fs.fixed_file = m_ring.register_file(static_cast<unsigned>(family_index(family)), fs.socket.fd);
    arm_recv(family);
    return &fs;
}

std::error_code engine_core::open(ip_family family) {
    if (m_stopping)
        return make_error_code(errc::stopped);
    if (!ensure_ring())
        return m_ring_error;
    return ensure_family(family)->open_error;
}

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

} // namespace icmpengine::detail
