// SPDX-License-Identifier: MIT
// A network simulator for system tests: a TUN device inside the test's
// private network namespace that answers ICMP echo requests itself, with
// scripted loss, delay, duplication, reordering, corruption, ICMP errors and
// unsolicited replies. Loopback always answers at once and perfectly; this is
// how tests get a network that does not. (The kernel here has no netem.)
//
// Safety: the simulator refuses to start in the initial network namespace,
// and its prefixes and local addresses must lie in ranges reserved for
// benchmarking and documentation (RFC 2544: 198.18.0.0/15; RFC 5737:
// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24; RFC 3849: 2001:db8::/32).
// It routes them into its own TUN device inside the private namespace and
// writes packets only into that device.
//
//     // inside a private namespace (system tests already are):
//     simulator_config config;
//     config.seed = test_seed("my test");
//     config.profile = profile::parse("delay=uniform:1ms:5ms,loss=0.2;198.18.0.7:loss=1");
//     network_simulator sim(config);
//     // ... ping 198.18.0.1 .. 198.18.255.253 and 2001:db8:5::/48 ...
//     sim.wait_for_requests(100, 5s);
//     for (const request_record& r : sim.requests()) ...  // the truth
//
// TIMING
//
// One thread reads the TUN device and writes replies from a min-heap of
// pending writes ordered by CLOCK_MONOTONIC time. It sleeps in ppoll() (timer
// slack 1 ns) until a spin window before the next write (`spin_window`, wider
// when wake-ups come late), then spins on the clock, still reading requests,
// and writes when the time has come. It runs
// SCHED_FIFO when it may. Measured on a shared, loaded 2-vCPU VM, writes go
// out 0.5-2 us after their scheduled time at the median and within ~20-60 us
// at p99 (see the [timing] test's output). Delays count from when the
// simulator read the request: the kernel's path from sendto() to that read
// (20-60 us there, a wake-up) and from the write to the pinger are not part
// of the injected delay, so RTT-accuracy tests should calibrate against a
// delay=0 baseline or compare with the record's `received` and `written`.
// At high reply rates (thousands per second) the spin windows join up and the
// real-time thread keeps a core busy; lower spin_window or realtime_priority
// for soak tests.
//
// PROFILE SYNTAX
//
//   profile  := [section] (';' section)*
//   section  := knob (',' knob)*                 the default, first and at most once
//             | target ':' knob (',' knob)*      an override for some targets
//   target   := IPV4 ['/' LEN] | '[' IPV6 ['/' LEN] ']'
//
// Whitespace around tokens is ignored. A target section sets only the knobs it
// names; everything else comes from the default section. When several target
// sections match a destination they apply from the shortest prefix to the
// longest (the most specific wins), and in text order for equal lengths.
//
// Durations are a decimal number and a unit: 250ns, 100us, 1.5ms, 2s ("0" is
// allowed alone). Probabilities P are decimals in [0, 1].
//
//   delay=D | delay=fixed:D       every reply waits D (default 0)
//   delay=uniform:A:B             uniform in [A, B]
//   delay=normal:MEAN:SD          normal, negative samples clamped to 0
//   delay=exp:MEAN                exponential with that mean
//   loss=P                        no reply at all
//   late=P:D                      reply after D instead of the sampled delay
//                                 (for pings whose timeout is shorter than D)
//   dup=P[:N[:GAP]]               N extra copies (default 1), GAP apart (default 0)
//   reorder=P[:MAXHOLD]           hold the reply back until the next reply to
//                                 any other request has been written (so it
//                                 overtakes), but at most MAXHOLD (default 1s)
//   corrupt=KIND:P[:ARG]          corrupt the reply (and its copies); each
//                                 kind is drawn independently:
//       checksum                  wrong ICMP checksum (the kernel drops it)
//       truncate[:N]              cut the echo payload to N bytes (default half),
//                                 with valid checksums and lengths
//       type[:T]                  ICMP type T (default 253 for v4, 200 for v6,
//                                 the RFC 4727 / RFC 4443 experimental types)
//       code[:C]                  ICMP code C (default 1)
//       sequence[:OFFSET]         sequence + OFFSET mod 2^16 (default 0x8000)
//       identifier[:OFFSET]       identifier + OFFSET mod 2^16 (default 0x8000)
//       token                     bytes 0..15 of the payload inverted
//       source[:ADDR]             sent from ADDR (default: the target with the
//                                 lowest bit of its last byte flipped); an ADDR
//                                 of the other family leaves that family at
//                                 the default
//   error=KIND:P[:CODE]           answer with an ICMP error instead, after the
//                                 sampled delay, quoting the IP header and the
//                                 echo request (up to 576 bytes for v4 and
//                                 1280 for v6, as Linux does):
//       unreach                   v4 type 3 (default code 1), v6 type 1
//                                 (default code 3); CODE is used as is
//       ttl                       v4 type 11, v6 type 3 (default code 0)
//   router=ADDR                   source of ICMP errors, one per family
//                                 (default: the prefix's last address but one,
//                                 198.18.255.254 and 2001:db8:5:ffff:ffff:ffff:ffff:fffe)
//   ttl=N                         IP TTL / hop limit of everything sent (64)
//   unsolicited=RATE[:DEST]       only in a section for one address: that
//                                 address sends RATE echo replies per second
//                                 (evenly spaced) that answer nothing, with
//                                 random identifier and sequence, to DEST
//                                 (default: the local address of its family)
//
// Per request, the decisions are drawn in a fixed order from a generator
// seeded by (seed, target, number of earlier requests to that target), so
// they do not depend on timing nor on how requests to different targets
// interleave: error, then loss, late, dup, reorder, then each corruption
// kind. At most one error kind is chosen (their probabilities must add up to
// at most 1). An error or a loss ends the decisions.
//
// Example: "delay=uniform:1ms:5ms,loss=0.2,dup=0.01,corrupt=checksum:0.01;198.18.0.7:loss=1"
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <thread>
#include <vector>

namespace icmpengine::testing {

/// CLOCK_MONOTONIC (libstdc++ and libc++ implement steady_clock with it).
using mono_clock = std::chrono::steady_clock;
using mono_time = mono_clock::time_point;

/// An IPv4 or IPv6 address, as the simulator sees it on the wire. Kept apart
/// from icmpengine::ip_address on purpose: the simulator is the reference the
/// engine is checked against and shares no code with it.
struct sim_address {
    int family = 0; ///< AF_INET or AF_INET6, 0 when unset
    std::array<std::uint8_t, 16> bytes{};

    /// Parses "198.18.0.1" or "2001:db8:5::1"; throws std::invalid_argument.
    static sim_address parse(std::string_view text);
    static sim_address v4(const std::uint8_t* network_order);
    static sim_address v6(const std::uint8_t* network_order);
    std::size_t size() const noexcept { return family == AF_INET6 ? 16 : 4; }
    std::string to_string() const;
    auto operator<=>(const sim_address&) const = default;
};

/// An address prefix, "198.18.0.0/16" or "2001:db8:5::/48".
struct sim_prefix {
    sim_address address;
    unsigned length = 0;

    /// Parses "ADDR/LEN" or "ADDR" (a single address); throws
    /// std::invalid_argument.
    static sim_prefix parse(std::string_view text);
    bool contains(const sim_address& a) const noexcept;
    /// The last address of the prefix minus `from_end` (0 is the last one).
    sim_address last_address(unsigned from_end = 0) const;
    std::string to_string() const;
};

enum class delay_kind : std::uint8_t { fixed, uniform, normal, exponential };

/// fixed: a; uniform: [a, b]; normal: mean a, standard deviation b;
/// exponential: mean a.
struct delay_spec {
    delay_kind kind = delay_kind::fixed;
    std::chrono::nanoseconds a{0};
    std::chrono::nanoseconds b{0};
};

/// Corruptions of an echo reply; the values are bits of request_record::corruptions.
enum class corruption : std::uint16_t {
    checksum = 1 << 0,
    truncate = 1 << 1,
    type = 1 << 2,
    code = 1 << 3,
    sequence = 1 << 4,
    identifier = 1 << 5,
    token = 1 << 6,
    source = 1 << 7,
};
inline constexpr std::size_t corruption_kinds = 8;
/// "checksum", "truncate", ...: the names of the profile syntax.
std::string_view corruption_name(corruption c);
/// The i-th corruption kind, in the order they are drawn (i < corruption_kinds).
corruption corruption_at(std::size_t i);

struct corruption_spec {
    double probability = 0;
    std::optional<std::int64_t> argument; ///< N / T / C / OFFSET, kind-specific
    std::optional<sim_address> source_v4; ///< corrupt=source:P:ADDR
    std::optional<sim_address> source_v6;
};

enum class icmp_error_kind : std::uint8_t { unreachable, time_exceeded };
inline constexpr std::size_t icmp_error_kinds = 2;

struct icmp_error_spec {
    double probability = 0;
    std::optional<std::uint8_t> code;
};

struct duplicate_spec {
    double probability = 0;
    unsigned copies = 1;
    std::chrono::nanoseconds gap{0};
};

struct reorder_spec {
    double probability = 0;
    std::chrono::nanoseconds max_hold = std::chrono::seconds(1);
};

struct late_spec {
    double probability = 0;
    std::chrono::nanoseconds delay{0};
};

struct unsolicited_spec {
    double rate = 0; ///< per second
    std::optional<sim_address> destination;
};

/// The knobs one profile section sets; unset ones come from the layer below.
struct profile_layer {
    std::optional<delay_spec> delay;
    std::optional<double> loss;
    std::optional<late_spec> late;
    std::optional<duplicate_spec> duplicate;
    std::optional<reorder_spec> reorder;
    std::array<std::optional<corruption_spec>, corruption_kinds> corruptions;
    std::array<std::optional<icmp_error_spec>, icmp_error_kinds> errors;
    std::optional<sim_address> router_v4;
    std::optional<sim_address> router_v6;
    std::optional<std::uint8_t> ttl;
    std::optional<unsolicited_spec> unsolicited;

    /// Sets every knob that `over` sets.
    void apply(const profile_layer& over);
};

/// What the simulator does for one target: every knob resolved.
struct echo_behaviour {
    delay_spec delay;
    double loss = 0;
    late_spec late;
    duplicate_spec duplicate;
    reorder_spec reorder;
    std::array<corruption_spec, corruption_kinds> corruptions;
    std::array<icmp_error_spec, icmp_error_kinds> errors;
    std::optional<sim_address> router_v4; ///< unset: the simulator's default
    std::optional<sim_address> router_v6;
    std::uint8_t ttl = 64;
};

/// A default layer and per-target overrides (see PROFILE SYNTAX above).
struct profile {
    struct target_layer {
        sim_prefix target;
        profile_layer layer;
    };
    profile_layer defaults;
    std::vector<target_layer> targets;

    /// Parses the profile syntax. Throws std::invalid_argument naming the bad
    /// token and what is wrong with it, e.g.
    /// "netsim profile: bad token 'loss=1.5': probability must be in [0, 1]".
    static profile parse(std::string_view text);
    /// The canonical text of this profile; parse(p.to_string()) is equivalent to p.
    std::string to_string() const;
    /// The knobs in force for a destination address.
    echo_behaviour behaviour_for(const sim_address& target) const;
};

/// What the simulator chose for one echo request.
enum class request_fate : std::uint8_t {
    replied, ///< echo reply after `delay` (maybe duplicated, reordered, corrupted)
    dropped, ///< loss: nothing sent
    late,    ///< echo reply after the late delay
    error,   ///< an ICMP error instead of a reply
};
std::string_view fate_name(request_fate f);

enum class write_kind : std::uint8_t { reply, duplicate, error, unsolicited };
std::string_view write_kind_name(write_kind k);

/// One packet the simulator wrote (or will write) into the TUN device.
struct packet_write {
    write_kind kind = write_kind::reply;
    mono_time scheduled{};
    mono_time written{};  ///< time_point{} while still pending
    std::size_t size = 0; ///< IP packet bytes
};

/// One echo request the simulator read, and what it did about it.
struct request_record {
    std::uint64_t index = 0; ///< 0, 1, ... in arrival order
    mono_time received{};
    sim_address source;
    sim_address target;
    std::uint16_t identifier = 0;
    std::uint16_t sequence = 0;
    std::size_t payload_size = 0; ///< echo data after the 8-byte ICMP header
    request_fate fate = request_fate::replied;
    std::chrono::nanoseconds delay{0}; ///< from `received` to the scheduled reply
    unsigned duplicates = 0;           ///< extra copies
    bool reordered = false;            ///< held back for the next reply to overtake
    std::uint16_t corruptions = 0;     ///< bits of `corruption`
    std::uint8_t error_type = 0;       ///< fate::error: ICMP type and code sent
    std::uint8_t error_code = 0;
    std::uint16_t reply_sequence = 0;   ///< as sent, after any corruption
    std::uint16_t reply_identifier = 0; ///< as sent, after any corruption
    sim_address reply_source;           ///< as sent (the router for errors)
    std::vector<packet_write> writes;

    bool corrupted(corruption c) const noexcept {
        return (corruptions & static_cast<std::uint16_t>(c)) != 0;
    }
    /// From `received` to the first answer written (reply or ICMP error):
    /// the delay drawn plus any time the answer was held back to reorder it
    /// and the simulator's lateness in writing it. Zero if nothing was
    /// written. The time is read just before the write, so the answer
    /// reaches the pinger's socket after received + answer_delay().
    std::chrono::nanoseconds answer_delay() const noexcept;
    /// One line: "#3 198.18.0.2 id=12 seq=1 replied delay=1ms writes=[reply +1.002ms]".
    std::string to_string() const;
};

/// An unsolicited echo reply the simulator sent.
struct unsolicited_record {
    sim_address source;
    sim_address destination;
    std::uint16_t identifier = 0;
    std::uint16_t sequence = 0;
    packet_write write;
};

/// A packet read from the TUN device that is not an echo request (router
/// solicitations, MLD reports, UDP, fragments, ...).
struct other_packet {
    mono_time received{};
    int family = 0;            ///< AF_INET, AF_INET6, or 0 for neither
    std::uint8_t protocol = 0; ///< IP protocol / IPv6 next header
    int icmp_type = -1;        ///< for ICMP / ICMPv6, else -1
    std::size_t size = 0;
};

/// Counts per fate, exact even past simulator_config::max_records; the write
/// lateness percentiles come from the stored records.
struct simulator_summary {
    std::uint64_t requests = 0;
    std::uint64_t replied = 0;
    std::uint64_t dropped = 0;
    std::uint64_t late = 0;
    std::uint64_t errors = 0;
    std::uint64_t duplicated = 0;        ///< requests answered more than once
    std::uint64_t duplicate_packets = 0; ///< extra copies written
    std::uint64_t reordered = 0;
    std::uint64_t corrupted = 0; ///< requests with at least one corruption
    std::array<std::uint64_t, corruption_kinds> per_corruption{};
    std::uint64_t unsolicited = 0;
    std::uint64_t other_packets = 0;
    std::uint64_t packets_written = 0;
    std::uint64_t kernel_dropped = 0; ///< requests the TUN queue dropped (tx_dropped)
    /// written - scheduled over every written packet of the stored records.
    std::chrono::nanoseconds lateness_p50{0};
    std::chrono::nanoseconds lateness_p99{0};
    std::chrono::nanoseconds lateness_max{0};

    /// A few human-readable lines.
    std::string to_string() const;
};

struct simulator_config {
    std::string device = "sim0";
    sim_prefix v4_prefix = sim_prefix::parse("198.18.0.0/16");
    sim_prefix v6_prefix = sim_prefix::parse("2001:db8:5::/48");
    /// Addresses of this namespace's end of the link, outside the routed
    /// prefixes (echo requests leave from them; replies go to them).
    sim_address v4_local = sim_address::parse("198.19.0.1");
    sim_address v6_local = sim_address::parse("2001:db8:4::1");
    unsigned mtu = 1500;
    unsigned queue_length = 4096; ///< TUN transmit queue, in packets
    std::uint64_t seed = 0;
    struct profile profile;
    /// Spin on the TUN device instead of sleeping in ppoll(): requests are
    /// read within a microsecond or two instead of after a wake-up, at the
    /// cost of a busy core. For RTT-accuracy tests. A spinning thread never
    /// runs real-time (realtime_priority is ignored): RT throttling
    /// (sched_rt_runtime_us) would stop it for 50 ms every second.
    bool busy_poll = false;
    /// How long before a scheduled write the thread stops sleeping and spins,
    /// at least; the thread widens it to twice the wake-up lateness it
    /// observes (up to 1 ms), so a loaded machine costs CPU, not precision.
    std::chrono::nanoseconds spin_window = std::chrono::microseconds(100);
    /// SCHED_FIFO priority of the simulator thread (sched(7)), 0 for the
    /// normal scheduler. A real-time thread is woken within microseconds even
    /// when every core is busy; without it a loaded machine delays writes by
    /// milliseconds. If the priority cannot be set the thread runs normally.
    int realtime_priority = 1;
    /// Request records kept; past this only the summary counts.
    std::size_t max_records = std::size_t{1} << 20;
};

/// The simulator. Construct it inside a private network namespace: it
/// creates the TUN device, routes the prefixes into it, and starts its
/// thread; the destructor stops the thread, removes the routes and addresses
/// and closes the device. Every member is thread-safe.
class network_simulator {
  public:
    /// Throws std::runtime_error (with the reason) if it cannot set up, and
    /// std::invalid_argument for a bad configuration.
    explicit network_simulator(simulator_config config);
    ~network_simulator();
    network_simulator(const network_simulator&) = delete;
    network_simulator& operator=(const network_simulator&) = delete;

    const simulator_config& config() const noexcept { return m_config; }
    sim_address local_address(int family) const;
    /// The default ICMP error source of a family.
    sim_address default_router(int family) const;

    /// Replaces the profile for every request read after this returns
    /// (requests already read keep their fate). Restarts the unsolicited
    /// streams.
    void set_profile(profile p);

    /// Sends one unsolicited echo reply now. `payload` is the echo data.
    void send_unsolicited(const sim_address& source, const sim_address& destination,
                          std::uint16_t identifier, std::uint16_t sequence,
                          std::vector<std::uint8_t> payload = std::vector<std::uint8_t>(56, 0xa5));

    /// Blocks until at least `count` echo requests were read, or `timeout`.
    bool wait_for_requests(std::size_t count, std::chrono::nanoseconds timeout) const;
    /// Blocks until no write is pending or held (unsolicited streams aside).
    bool wait_until_flushed(std::chrono::nanoseconds timeout) const;

    /// Snapshots of the record.
    std::vector<request_record> requests() const;
    std::vector<unsolicited_record> unsolicited() const;
    std::vector<other_packet> other_packets() const;
    simulator_summary summary() const;

  private:
    struct pending_write;
    struct held_write;
    struct command;
    struct unsolicited_stream;
    struct shared_state;

    void thread_main();
    void thread_loop();
    void handle_packet(const std::uint8_t* data, std::size_t size, mono_time now);
    bool handle_echo_request(const std::uint8_t* data, std::size_t size, mono_time now,
                             other_packet& other);
    void schedule(pending_write w);
    void write_due(mono_time now);
    void write_packet(pending_write& w);
    void release_held(mono_time now, bool all);
    void run_commands(mono_time now);
    void rebuild_unsolicited_streams(mono_time now);
    std::optional<mono_time> next_deadline() const;
    void tear_down() noexcept;

    simulator_config m_config;
    int m_tun_fd = -1;
    int m_wake_fd = -1;
    std::vector<std::string> m_undo; ///< `ip` commands that undo the setup, newest first

    // Owned by the simulator thread.
    std::vector<pending_write> m_heap;
    std::vector<held_write> m_held; ///< reorder: replies waiting to be overtaken
    std::vector<unsolicited_stream> m_streams;
    std::shared_ptr<const profile> m_profile;
    std::map<sim_address, std::uint64_t> m_target_counts;
    std::uint64_t m_stream_generation = 0;
    std::uint64_t m_write_order = 0;
    std::uint16_t m_ip_id = 0;

    std::unique_ptr<shared_state> m_shared;
    std::thread m_thread;
};

} // namespace icmpengine::testing
