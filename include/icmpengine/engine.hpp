// SPDX-License-Identifier: MIT
// icmpengine::engine: ICMP echo over io_uring, driven by C++20 coroutines.
#pragma once

#include <icmpengine/export.hpp>
#include <icmpengine/ip_address.hpp>
#include <icmpengine/ping_result.hpp>
#include <icmpengine/remote_engine.hpp>
#include <icmpengine/task.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>

namespace icmpengine {

/// Which kind of ICMP socket the engine opens.
enum class socket_mode : std::uint8_t {
    /// Datagram ("ping") sockets; if the kernel refuses them (the group is
    /// outside net.ipv4.ping_group_range) and the process has CAP_NET_RAW,
    /// raw sockets instead.
    automatic,
    /// Only SOCK_DGRAM / IPPROTO_ICMP(V6): no privileges, the kernel owns the
    /// echo identifier and hands this socket only its own replies.
    datagram,
    /// Only SOCK_RAW: needs CAP_NET_RAW; the engine sets and filters the echo
    /// identifier itself.
    raw,
};

/// Parts of the engine that log, each with its own level.
enum class log_component : std::uint8_t { sockets, ring, expiry, matching };
inline constexpr std::size_t log_component_count = 4;

enum class log_level : std::uint8_t { off, error, warn, info, debug, trace };

ICMPENGINE_API std::string_view to_string(log_component c) noexcept;
ICMPENGINE_API std::string_view to_string(log_level l) noexcept;

/// Logging is off unless a sink is set and a component's level is above off.
/// A disabled level costs one byte compare on the hot path; messages are
/// formatted only when they will be delivered.
struct log_config {
    std::function<void(log_component, log_level, std::string_view)> sink{};
    std::array<log_level, log_component_count> levels{log_level::off, log_level::off,
                                                      log_level::off, log_level::off};
    /// Sets every component to `l`.
    log_config& all(log_level l) noexcept {
        levels.fill(l);
        return *this;
    }
    log_config& set(log_component c, log_level l) noexcept {
        levels[static_cast<std::size_t>(c)] = l;
        return *this;
    }
};

/// A genuine reply (its token checked out) to a ping that had already ended.
struct stray_reply {
    enum class kind : std::uint8_t {
        duplicate, ///< the ping had its reply already
        late,      ///< the ping had timed out, was cancelled, or ended otherwise
    };
    kind what = kind::late;
    ip_address from{};
    std::uint16_t sequence = 0;
    /// For an echo reply: its round-trip time, from the send of the ping it
    /// answers (kernel receive timestamp, as ping_result::rtt), while the
    /// engine still knows that send: until the ping's slot is used for
    /// another ping (the engine reuses slots only once it has 65,536, the
    /// longest-free first). Unset for an ICMP error about an ended ping and
    /// for a reply whose slot was reused.
    std::optional<std::chrono::nanoseconds> rtt{};
};

/// Engine-wide settings. The defaults suit anything from one ping to a
/// fan-out over a million targets.
struct engine_config {
    /// io_uring submission queue entries (power of two, 8..32768). The
    /// completion queue gets four times as many.
    std::uint32_t queue_depth = 4096;
    /// Pings in flight at most; beyond it, ping() waits for a free slot
    /// (backpressure, not failure). 1..16,777,216.
    std::uint32_t max_in_flight = 1u << 20;
    /// The table of pings in flight (a slot each, about 100 bytes plus the
    /// request's buffer) grows to this many slots before it reuses a free
    /// one, the longest-free first: so that a late reply still finds the
    /// ping it answers (stray_reply::rtt) and sequence numbers advance as
    /// ping users expect. Beyond it the table still grows whenever every
    /// slot is in use. Fewer keep memory down where few pings are in flight
    /// but many are sent (a monitor pinging 10,000 targets a second needs
    /// about 10,000). 1..65,536.
    std::uint32_t reuse_slots_after = 65536;
    /// Echo requests submitted per io_uring_enter at most. Each request's send
    /// time is taken just before the enter that submits it, so a request's
    /// RTT is over-estimated by the time the kernel spends sending the
    /// requests before it in the same batch: this bounds that bias (README,
    /// "RTT"; bench/README.md measures it). 1..queue_depth.
    std::uint32_t send_batch = 16;
    /// Provided receive buffers per socket (power of two, 16..32768) and the
    /// size of each (256..65536 bytes). A reply longer than a buffer still
    /// matches; its payload is checked as far as it was received.
    std::uint32_t receive_buffers = 512;
    std::uint32_t receive_buffer_size = 2048;
    /// SO_RCVBUF in bytes; 0 picks one that holds min(max_in_flight, 32768)
    /// replies (each costs ~832 bytes of kernel memory), at least 1 MiB. Set
    /// with SO_RCVBUFFORCE when allowed, else capped by net.core.rmem_max.
    std::uint32_t socket_receive_buffer = 0;
    /// DSCP (0..63) for IPv4 TOS / IPv6 traffic class; 0 leaves it unset.
    std::uint8_t dscp = 0;
    /// TTL / hop limit (1..255); 0 keeps the kernel default.
    std::uint8_t ttl = 0;
    /// Sets the Don't-Fragment bit (IPv4) / IPV6_DONTFRAG.
    bool dont_fragment = false;
    /// Source addresses to bind per family (unspecified = let the kernel choose).
    std::optional<ip_address> source_v4{};
    std::optional<ip_address> source_v6{};
    /// Bind both sockets to this interface (SO_BINDTODEVICE); empty = any.
    std::string interface {};
    /// SO_MARK on both sockets (the routing / netfilter mark, socket(7));
    /// 0 sets none. Needs CAP_NET_ADMIN (or CAP_NET_RAW, Linux 5.17+):
    /// without it the sockets fail to open with errc::no_cap_net_admin.
    std::uint32_t fwmark = 0;
    /// Fills each echo request's payload after its token with bytes that
    /// look random and differ from request to request (fping -R), instead of
    /// the fixed pattern. They are a keystream of the request's token tag,
    /// so replies are still checked byte for byte.
    bool random_payload = false;
    /// Only a reply from the address pinged resolves a ping: the engine
    /// always refuses replies from elsewhere (a token is keyed with the
    /// target's address, README "Matching") and counts them in
    /// invalid_packets. With this flag (fping --check-source) a genuine echo
    /// of our token from another address is also counted in
    /// engine_stats::wrong_source.
    bool check_source = false;
    socket_mode mode = socket_mode::automatic;
    /// Drops this fraction (0..1) of echo requests instead of sending them,
    /// to test what sits above the engine. Those pings end as `timeout` at
    /// their deadline with ping_result::fake_dropped set. The choice is a
    /// PRNG's seeded with fake_drop_seed, so a run can be replayed.
    double fake_drop_probability = 0.0;
    std::uint64_t fake_drop_seed = 1;
    log_config log{};
    /// Called (from inside run()) for every late or duplicate reply, so that
    /// per-target statistics can count them; engine_stats counts them too.
    std::function<void(const stray_reply&)> on_stray{};
};

/// Per-ping settings.
struct ping_options {
    /// ICMP payload bytes after the 8-byte header (0..65507; 56 like ping).
    /// At least 16 carry the engine's matching token; with fewer, replies are
    /// matched by source address and sequence only (see README, "Matching").
    std::uint32_t payload_size = 56;
};

/// Counters since the engine was created. They balance at every moment:
/// sent == replies + timeouts + icmp_errors + send_errors + cancelled + in_flight.
struct engine_stats {
    std::uint64_t sent = 0;         ///< pings accepted (each ends exactly once)
    std::uint64_t replies = 0;      ///< ended as `reply`
    std::uint64_t timeouts = 0;     ///< ended as `timeout` (including fake drops)
    std::uint64_t icmp_errors = 0;  ///< ended as unreachable / time_exceeded / ...
    std::uint64_t send_errors = 0;  ///< ended as `send_error`
    std::uint64_t cancelled = 0;    ///< ended as `cancelled`
    std::uint64_t in_flight = 0;    ///< accepted and not yet ended
    std::uint64_t waiting = 0;      ///< ping() calls waiting for a free slot
    std::uint64_t fake_dropped = 0; ///< of `timeouts`, dropped by the test hook
    std::uint64_t late_replies = 0; ///< genuine replies to pings already ended (or ICMP errors)
    std::uint64_t duplicate_replies = 0; ///< further replies to a ping already answered
    std::uint64_t invalid_packets = 0;   ///< malformed, truncated, forged or mismatching
    std::uint64_t foreign_packets = 0;   ///< well-formed but not about our requests
    std::uint64_t receive_overruns = 0;  ///< packets the kernel dropped: socket buffer full
    std::uint64_t submissions = 0;       ///< io_uring_enter calls that submitted work
    /// Of `invalid_packets`, genuine replies from another address than the
    /// target (counted apart only with engine_config::check_source).
    std::uint64_t wrong_source = 0;
};

/// Receives the results of pings started with engine::start_ping: the way to
/// ping without a coroutine frame per ping (the library's fan-outs use it).
class ping_handler {
  public:
    /// Called exactly once per ping started with this handler, with the
    /// cookie given to start_ping: from inside engine::run(), never from
    /// inside start_ping itself. (Pings that stop() or the engine's
    /// destructor cancel outside run() are delivered from inside those.)
    /// It may start further pings. An exception it throws is rethrown by
    /// run() once run()'s task has completed (as for a spawned task); the
    /// other results are still delivered. One thrown inside stop() or the
    /// destructor outside run() is rethrown by the next run(), if any.
    virtual void on_ping_result(std::uint64_t cookie, const ping_result& result) = 0;

  protected:
    ping_handler() = default;
    ping_handler(const ping_handler&) = default;
    ping_handler& operator=(const ping_handler&) = default;
    ~ping_handler() = default;
};

/// Throws std::invalid_argument naming the value if engine::ping would
/// refuse these arguments: a timeout that is not positive or longer than
/// max_ping_timeout, a payload larger than max_payload_size (limits.hpp).
/// Every entry point of the library checks with this one function; adapters
/// that start pings elsewhere (another thread) call it at their own call.
ICMPENGINE_API void check_ping_arguments(const ip_address& to, std::chrono::nanoseconds timeout,
                                         const ping_options& options = {});

/// Names one ping started with engine::start_ping, for engine::cancel.
struct ping_ticket {
    ping_handler* handler = nullptr;
    std::uint64_t cookie = 0;
    /// Where the ping went in flight at once (the engine's slot and its
    /// generation); unset if it had to wait for a free slot.
    std::uint32_t slot = 0xffffffffu;
    std::uint32_t generation = 0;
};

namespace detail {
class engine_core;
struct engine_access;
} // namespace detail

/// The ping engine. One per thread: an engine is not thread-safe, by design
/// (no locks on the hot path); run one engine per thread to use more cores,
/// and reach an engine from other threads through remote(). Everything
/// happens inside run() (the engine's own loop) or poll() (a step driven by
/// another loop): coroutines awaiting pings are resumed from there. An
/// engine belongs to the thread that first uses its ring (it is created
/// IORING_SETUP_SINGLE_ISSUER): construct, drive and destroy it there.
///
///     icmpengine::engine eng;
///     auto r = eng.run(eng.ping(icmpengine::ip_address::parse("::1"), 1s));
///     std::cout << to_string(r.status) << " " << r.rtt.count() << " ns\n";
class ICMPENGINE_API engine {
  public:
    /// Throws std::invalid_argument for an out-of-range setting (naming it).
    /// Opens nothing: the ring and sockets are created on first use.
    explicit engine(engine_config config = {});
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    /// One echo request to `to`, ending in a reply, a timeout after `timeout`
    /// (10 us .. days), an ICMP error, a send error or cancellation. Throws
    /// std::invalid_argument at the call for timeout <= 0 or a payload size
    /// out of range. Never throws for network failures: those are results.
    task<ping_result> ping(ip_address to, std::chrono::nanoseconds timeout,
                           ping_options options = {});

    /// The same ping without a coroutine: `handler.on_ping_result(cookie,
    /// result)` receives its result, exactly once, from inside run(). What
    /// stays per ping in flight is the engine's own state, not a coroutine
    /// frame. Pings beyond max_in_flight wait their turn as ping()'s do;
    /// after stop() they end as `cancelled`. The handler must outlive the
    /// ping (or be detached with forget()). Throws std::invalid_argument as
    /// ping() does.
    ping_ticket start_ping(ip_address to, std::chrono::nanoseconds timeout, ping_handler& handler,
                           std::uint64_t cookie, ping_options options = {});

    /// Cancels the ping `ticket` names, if it has not ended yet: it ends as
    /// `cancelled` (counted in engine_stats::cancelled) and its handler gets
    /// that result from inside run() or poll(), as for any other outcome.
    /// Returns false (and does nothing) if the ping had already ended. A
    /// reply that arrives later counts as late. Constant time for a ping that
    /// went in flight at once; linear in the pings waiting (and, for one that
    /// waited, in the slots) otherwise.
    bool cancel(const ping_ticket& ticket);

    /// Detaches `handler` from every ping it started whose result has not
    /// been delivered: pings in flight end as they will (and are counted)
    /// but their results go nowhere; pings still waiting for a slot are
    /// withdrawn. For a handler about to be destroyed before its pings
    /// ended. Linear in the engine's slots.
    void forget(const ping_handler& handler) noexcept;

    /// Drives the event loop until `t` completes; returns its value or
    /// rethrows its exception. Also rethrows the first exception that escaped
    /// a spawned task.
    template <typename T>
    T run(task<T> t) {
        drive(detail::task_access::handle(t));
        return detail::task_access::take_result(t);
    }

    /// Runs `t` in the background, owned by the engine: it progresses while
    /// run() or poll() drives the loop and is finished (its pings cancelled)
    /// by stop().
    void spawn(task<void> t);

    /// Does all the work that is ready, without blocking, for a program whose
    /// own event loop drives the engine: submits queued requests, reaps
    /// completions, ends the pings whose deadline passed, runs work posted
    /// through remote(), delivers results and resumes coroutines (spawned
    /// tasks included). Call it whenever native_handle() is readable. Returns
    /// true while the engine has something pending (pings in flight or
    /// waiting, sleeps, a remote() handle that may post), false when idle.
    /// Rethrows the first exception that escaped a spawned task, a handler or
    /// remote work. Not from inside run() or poll() (std::logic_error).
    ///
    ///     int fd = eng.native_handle();
    ///     eng.spawn(my_task(eng));
    ///     while (eng.poll())
    ///         ::poll(&(pollfd{fd, POLLIN, 0}), 1, -1); // or epoll, Asio, libuv...
    bool poll();

    /// A file descriptor for a host loop to wait on (poll(2), epoll, Asio's
    /// posix::stream_descriptor::async_wait): readable whenever poll() has
    /// work to do - a reply, an ICMP error, the engine's timer, a finished
    /// send, work queued outside poll() (a start_ping or spawn from the host
    /// loop, remote work), or work a poll() left for the next call.
    /// Level-triggered: it stays readable until poll() runs, and every
    /// poll() clears it first, so edge-triggered waiting works too. An idle
    /// engine's descriptor stays quiet (no periodic wake-ups). Wait for
    /// readability only: do not read, write or close it. The first call
    /// creates the ring and the descriptor (an eventfd registered with the
    /// ring; run()-only programs never pay for it); -1 if io_uring is
    /// unavailable. Throws std::system_error if the descriptor cannot be
    /// created.
    int native_handle();

    /// A thread-safe, copyable handle that other threads use to post work
    /// and pings to this engine (remote_engine.hpp). Call it on the engine's
    /// thread; after stop() the handle refuses work with errc::stopped.
    remote_engine remote();

    /// Resumes the caller at `deadline`, or earlier when `stop` is requested
    /// or the engine stops: true if the deadline was reached, false if woken
    /// early. A deadline already past completes at once (true). Sleeps share
    /// the engine's one timer with the ping deadlines, so a fan-out can pace
    /// its sends without a thread or a second clock:
    ///
    ///     auto next = std::chrono::steady_clock::now();
    ///     for (auto& t : targets) {
    ///         co_await eng.sleep_until(next += 1ms); // one request per ms
    ///         ...
    ///     }
    ///
    /// request_stop() on `stop` must be called on the engine's thread (from a
    /// coroutine inside run()), which is where the sleeper is queued to resume.
    task<bool> sleep_until(std::chrono::steady_clock::time_point deadline,
                           std::stop_token stop = {});
    /// sleep_until(now + duration); a duration <= 0 completes at once.
    task<bool> sleep_for(std::chrono::nanoseconds duration, std::stop_token stop = {});

    /// Opens the socket for `family` now instead of at the first ping; returns
    /// why it cannot be opened (e.g. errc::ping_group_range).
    std::error_code open(ip_family family);

    /// Cancels every ping in flight (each awaiter is resumed once with
    /// `cancelled`), lets spawned tasks finish, and makes later pings end as
    /// `cancelled`. Idempotent; the destructor calls it.
    void stop();
    bool stopped() const noexcept;

    /// The counters. receive_overruns is read from the sockets at the call
    /// (SO_MEMINFO: one getsockopt per open socket), so call it per report,
    /// not per ping.
    engine_stats stats() const noexcept;
    const engine_config& config() const noexcept;
    /// The socket kind in use for `family` (after it was opened).
    std::optional<socket_mode> socket_kind(ip_family family) const noexcept;

  private:
    friend struct detail::engine_access; // the tests' fault-injection seam
    void drive(std::coroutine_handle<> root);

    std::unique_ptr<detail::engine_core> m_core;
};

} // namespace icmpengine
