// SPDX-License-Identifier: MIT
// System tests of the network simulator (support/netsim.hpp), checked with
// plain non-blocking ICMP datagram ("ping") sockets and raw sockets: every
// knob does what the simulator's record says it did. Runs inside the private
// namespace that support/system_main.cpp created.
#include <catch2/catch.hpp>

#include "netsim.hpp"
#include "realtime.hpp"
#include "received_message.hpp"
#include "seed.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <linux/errqueue.h>
#include <map>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <random>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

namespace {

using namespace icmpengine::testing;
using namespace std::chrono_literals;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

/// How long to wait for something that is bound to happen (a reply, the
/// simulator reading a request): only there so that a broken test fails
/// instead of hanging, never a measure of speed.
constexpr milliseconds wait_limit = 20s;

int icmp_protocol(int family) {
    return family == AF_INET ? int{IPPROTO_ICMP} : int{IPPROTO_ICMPV6};
}

const char* family_name(int family) {
    return family == AF_INET ? "v4" : "v6";
}

/// The n-th address of the simulator's default prefix of a family:
/// 198.18.0.n or 2001:db8:5::n.
sim_address target(int family, unsigned n) {
    return sim_address::parse(family == AF_INET ? "198.18.0." + std::to_string(n)
                                                : "2001:db8:5::" + std::to_string(n));
}

/// A profile section header for one address: "198.18.0.7:" or "[2001:db8:5::7]:".
std::string at(const sim_address& a) {
    return a.family == AF_INET ? a.to_string() + ":" : "[" + a.to_string() + "]:";
}

sockaddr_storage to_sockaddr(const sim_address& a, std::uint16_t port, socklen_t& len) {
    sockaddr_storage ss{};
    if (a.family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        std::memcpy(&sin->sin_addr, a.bytes.data(), 4);
        len = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        std::memcpy(&sin6->sin6_addr, a.bytes.data(), 16);
        len = sizeof(sockaddr_in6);
    }
    return ss;
}

sim_address from_sockaddr(const sockaddr* sa) {
    if (sa->sa_family == AF_INET)
        return sim_address::v4(reinterpret_cast<const std::uint8_t*>(
            &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr));
    return sim_address::v6(reinterpret_cast<const std::uint8_t*>(
        &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr));
}

/// 56 bytes of echo data whose first 16 (the engine's token) depend on `seq`.
std::vector<std::uint8_t> payload_for(std::uint16_t seq) {
    std::vector<std::uint8_t> p(56);
    for (std::size_t i = 0; i < p.size(); ++i)
        p[i] = static_cast<std::uint8_t>(i < 16 ? seq * 31 + i * 7 : i);
    return p;
}

struct echo_reply {
    sim_address from;
    std::uint8_t type = 0;
    std::uint8_t code = 0;
    std::uint16_t identifier = 0;
    std::uint16_t sequence = 0;
    std::vector<std::uint8_t> payload;
    int ttl = -1;
    mono_time at{};
};

struct queued_error {
    std::uint8_t origin = 0;
    std::uint8_t type = 0;
    std::uint8_t code = 0;
    std::uint32_t error = 0;
    sim_address offender;
    std::vector<std::uint8_t> data; ///< the original echo request as returned
};

double us(nanoseconds d) {
    return static_cast<double>(d.count()) / 1e3;
}

template <typename T>
T percentile(std::vector<T> v, double p) {
    REQUIRE(!v.empty());
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(static_cast<double>(v.size()) * p))];
}

/// A non-blocking ICMP datagram socket (socket(AF_INET, SOCK_DGRAM,
/// IPPROTO_ICMP), "ping socket"); the kernel owns the identifier.
class ping_socket {
  public:
    explicit ping_socket(int family, std::uint16_t bind_identifier = 0) : m_family(family) {
        m_fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, icmp_protocol(family));
        if (m_fd < 0)
            throw std::runtime_error(std::string("ping socket: ") + std::strerror(errno));
        const int on = 1;
        // Room for a few thousand replies that nobody reads yet (root only;
        // otherwise net.core.rmem_max caps it, which is fine for short bursts).
        const int buffer = 4 << 20;
        ::setsockopt(m_fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
        if (family == AF_INET) {
            ::setsockopt(m_fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on);
            ::setsockopt(m_fd, IPPROTO_IP, IP_RECVTTL, &on, sizeof on);
        } else {
            ::setsockopt(m_fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof on);
            ::setsockopt(m_fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on);
        }
        if (bind_identifier != 0) {
            socklen_t len = 0;
            sim_address any;
            any.family = family;
            sockaddr_storage ss = to_sockaddr(any, bind_identifier, len);
            if (::bind(m_fd, reinterpret_cast<sockaddr*>(&ss), len) != 0)
                throw std::runtime_error(std::string("bind ping socket: ") + std::strerror(errno));
        }
    }
    ~ping_socket() { ::close(m_fd); }
    ping_socket(const ping_socket&) = delete;
    ping_socket& operator=(const ping_socket&) = delete;

    /// The echo identifier the kernel uses for this socket: its "port".
    std::uint16_t identifier() const {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&ss), &len);
        return ntohs(m_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                         : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    }

    mono_time send(const sim_address& to, std::uint16_t seq) {
        return send(to, seq, payload_for(seq));
    }
    mono_time send(const sim_address& to, std::uint16_t seq,
                   const std::vector<std::uint8_t>& payload) {
        std::vector<std::uint8_t> m(8 + payload.size());
        m[0] = m_family == AF_INET ? 8 : 128; // echo request; the kernel sets id and checksum
        m[6] = static_cast<std::uint8_t>(seq >> 8);
        m[7] = static_cast<std::uint8_t>(seq);
        std::copy(payload.begin(), payload.end(), m.begin() + 8);
        socklen_t len = 0;
        sockaddr_storage ss = to_sockaddr(to, 0, len);
        // With IP_RECVERR, an ICMP error for an earlier ping is also reported
        // (once) by the next sendto(), which then sends nothing: retry.
        for (int attempt = 0;; ++attempt) {
            const mono_time t = mono_clock::now();
            const ssize_t n =
                ::sendto(m_fd, m.data(), m.size(), 0, reinterpret_cast<sockaddr*>(&ss), len);
            if (n == static_cast<ssize_t>(m.size()))
                return t;
            const bool earlier_error =
                errno == EHOSTUNREACH || errno == ENETUNREACH || errno == EPROTO;
            if (!earlier_error || attempt == 3)
                throw std::runtime_error("sendto " + to.to_string() + ": " + std::strerror(errno));
        }
    }

    /// The next echo reply, or nullopt after `timeout`.
    std::optional<echo_reply> receive(milliseconds timeout) {
        pollfd p{m_fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0 || (p.revents & POLLIN) == 0)
            return std::nullopt;
        const mono_time at = mono_clock::now();
        std::uint8_t buf[2048];
        const received_message m = receive_message(m_fd, buf, 0);
        if (m.length < 8)
            return std::nullopt;
        echo_reply r;
        r.at = at;
        r.from = from_sockaddr(reinterpret_cast<const sockaddr*>(&m.from));
        r.type = buf[0];
        r.code = buf[1];
        r.identifier = static_cast<std::uint16_t>(buf[4] << 8 | buf[5]);
        r.sequence = static_cast<std::uint16_t>(buf[6] << 8 | buf[7]);
        r.payload.assign(buf + 8, buf + m.length);
        const control_message* ttl = m.find(IPPROTO_IP, IP_TTL);
        if (ttl == nullptr)
            ttl = m.find(IPPROTO_IPV6, IPV6_HOPLIMIT);
        if (ttl != nullptr && ttl->data.size() >= sizeof r.ttl)
            std::memcpy(&r.ttl, ttl->data.data(), sizeof r.ttl);
        return r;
    }

    /// The next `n` echo replies (fewer only if none came for wait_limit).
    std::vector<echo_reply> receive_n(std::size_t n) {
        std::vector<echo_reply> all;
        while (all.size() < n)
            if (auto r = receive(wait_limit))
                all.push_back(std::move(*r));
            else
                break;
        return all;
    }

    /// The next error from the error queue (IP_RECVERR / IPV6_RECVERR), or
    /// nullopt after `timeout`.
    std::optional<queued_error> receive_error(milliseconds timeout) {
        pollfd p{m_fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0 || (p.revents & POLLERR) == 0)
            return std::nullopt;
        std::uint8_t buf[2048];
        const received_message m = receive_message(m_fd, buf, MSG_ERRQUEUE);
        if (m.length < 0)
            return std::nullopt;
        const control_message* c = m.find(IPPROTO_IP, IP_RECVERR);
        if (c == nullptr)
            c = m.find(IPPROTO_IPV6, IPV6_RECVERR);
        if (c == nullptr || c->data.size() < sizeof(sock_extended_err) + sizeof(sockaddr_in))
            return std::nullopt;
        // The offender's address follows the sock_extended_err
        // (SO_EE_OFFENDER); copied out, as the control data is not aligned.
        sock_extended_err ee{};
        std::memcpy(&ee, c->data.data(), sizeof ee);
        sockaddr_storage offender{};
        std::memcpy(&offender, c->data.data() + sizeof ee,
                    std::min(sizeof offender, c->data.size() - sizeof ee));
        queued_error e;
        e.origin = ee.ee_origin;
        e.type = ee.ee_type;
        e.code = ee.ee_code;
        e.error = ee.ee_errno;
        e.offender = from_sockaddr(reinterpret_cast<const sockaddr*>(&offender));
        e.data.assign(buf, buf + m.length);
        return e;
    }

  private:
    int m_family;
    int m_fd = -1;
};

/// A raw ICMP / ICMPv6 socket: sees echo replies that no ping socket gets
/// (wrong type, wrong identifier, unsolicited ones).
class raw_icmp_socket {
  public:
    explicit raw_icmp_socket(int family) : m_family(family) {
        m_fd = ::socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, icmp_protocol(family));
        if (m_fd < 0)
            throw std::runtime_error(std::string("raw socket: ") + std::strerror(errno));
    }
    ~raw_icmp_socket() { ::close(m_fd); }
    raw_icmp_socket(const raw_icmp_socket&) = delete;
    raw_icmp_socket& operator=(const raw_icmp_socket&) = delete;

    /// ICMP messages as they come, until `enough(all so far)` holds or none
    /// came for wait_limit.
    template <typename Enough>
    std::vector<echo_reply> receive_until(Enough enough) {
        std::vector<echo_reply> all;
        pollfd p{m_fd, POLLIN, 0};
        while (!enough(all) &&
               ::poll(&p, 1, static_cast<int>(milliseconds(wait_limit).count())) > 0) {
            std::uint8_t buf[2048];
            sockaddr_storage ss{};
            socklen_t len = sizeof ss;
            const ssize_t n =
                ::recvfrom(m_fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&ss), &len);
            // IPv4 raw sockets return the IP header, IPv6 ones do not.
            const std::size_t off = m_family == AF_INET ? (buf[0] & 0x0fu) * 4u : 0;
            if (n <= 0 || static_cast<std::size_t>(n) < off + 8)
                continue;
            echo_reply r;
            r.from = from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
            r.type = buf[off];
            r.code = buf[off + 1];
            r.identifier = static_cast<std::uint16_t>(buf[off + 4] << 8 | buf[off + 5]);
            r.sequence = static_cast<std::uint16_t>(buf[off + 6] << 8 | buf[off + 7]);
            r.payload.assign(buf + off + 8, buf + n);
            all.push_back(std::move(r));
        }
        return all;
    }

  private:
    int m_family;
    int m_fd = -1;
};

std::vector<echo_reply> only_from(const std::vector<echo_reply>& all, const sim_address& from) {
    std::vector<echo_reply> out;
    std::copy_if(all.begin(), all.end(), std::back_inserter(out),
                 [&](const echo_reply& r) { return r.from == from; });
    return out;
}

/// Prints what the simulator saw and did, for a failure's context.
void dump(const network_simulator& sim) {
    std::printf("simulator record:\n%s", sim.summary().to_string().c_str());
    for (const request_record& r : sim.requests())
        std::printf("  %s\n", r.to_string().c_str());
    for (const other_packet& o : sim.other_packets())
        std::printf("  other: family %d protocol %d icmp type %d, %zu bytes\n", o.family,
                    o.protocol, o.icmp_type, o.size);
    std::fflush(stdout);
}

simulator_config config_with(const std::string& profile_text, std::uint64_t seed = 1) {
    simulator_config c;
    c.seed = seed;
    c.profile = profile::parse(profile_text);
    return c;
}

std::optional<request_record> find_request(const network_simulator& sim, const sim_address& to,
                                           std::uint16_t seq) {
    for (request_record& r : sim.requests())
        if (r.target == to && r.sequence == seq)
            return std::move(r);
    return std::nullopt;
}

} // namespace

TEST_CASE("profile syntax: parse, layering, canonical text", "[netsim][parse]") {
    const profile p = profile::parse(
        " delay=uniform:1ms:5ms, loss=0.2,dup=0.01,corrupt=checksum:0.01 ;"
        "198.18.0.0/24:loss=0.5,ttl=7; 198.18.0.7:loss=1 ;[2001:db8:5::7]:delay=exp:250us,"
        "error=unreach:0.25:4,router=2001:db8:5::1;198.18.0.9:unsolicited=10:198.19.0.1");
    CHECK(p.targets.size() == 4);

    const echo_behaviour seven = p.behaviour_for(sim_address::parse("198.18.0.7"));
    CHECK(seven.loss == 1.0);                       // the /32 beats the /24
    CHECK(seven.ttl == 7);                          // from the /24
    CHECK(seven.delay.kind == delay_kind::uniform); // from the default
    CHECK(seven.delay.a == 1ms);
    CHECK(seven.delay.b == 5ms);
    CHECK(seven.duplicate.probability == 0.01);
    CHECK(seven.corruptions[0].probability == 0.01);

    const echo_behaviour other = p.behaviour_for(sim_address::parse("198.18.1.1"));
    CHECK(other.loss == 0.2);
    CHECK(other.ttl == 64);

    const echo_behaviour v6 = p.behaviour_for(sim_address::parse("2001:db8:5::7"));
    CHECK(v6.delay.kind == delay_kind::exponential);
    CHECK(v6.delay.a == 250us);
    CHECK(v6.errors[static_cast<std::size_t>(icmp_error_kind::unreachable)].probability == 0.25);
    CHECK(v6.errors[static_cast<std::size_t>(icmp_error_kind::unreachable)].code == 4);
    CHECK(v6.router_v6 == sim_address::parse("2001:db8:5::1"));

    // The canonical text parses back to the same profile.
    const std::string text = p.to_string();
    INFO(text);
    CHECK(profile::parse(text).to_string() == text);
    CHECK(profile::parse("").to_string().empty());
    CHECK(profile::parse("delay=1.5ms").defaults.delay->a == 1500us);
    CHECK(profile::parse("corrupt=source:1:2001:db8:5::99").defaults.corruptions[7]->source_v6 ==
          sim_address::parse("2001:db8:5::99"));
}

TEST_CASE("profile syntax: errors name the bad token", "[netsim][parse]") {
    auto error_of = [](const std::string& text) -> std::string {
        try {
            (void)profile::parse(text);
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "(no error)";
    };
    using Catch::Matchers::Contains;
    CHECK_THAT(error_of("delay=1ms,loss=1.5"), Contains("'loss=1.5'") && Contains("[0, 1]"));
    CHECK_THAT(error_of("delay=5"), Contains("'delay=5'") && Contains("unit"));
    CHECK_THAT(error_of("delay=uniform:5ms:1ms"), Contains("'delay=uniform:5ms:1ms'"));
    CHECK_THAT(error_of("delay=gamma:1ms"), Contains("'delay=gamma:1ms'"));
    CHECK_THAT(error_of("corrupt=bogus:0.1"), Contains("'corrupt=bogus:0.1'"));
    CHECK_THAT(error_of("corrupt=token:0.1:3"), Contains("'corrupt=token:0.1:3'"));
    CHECK_THAT(error_of("frobnicate=1"), Contains("'frobnicate=1'") && Contains("unknown knob"));
    CHECK_THAT(error_of("loss"), Contains("'loss'") && Contains("NAME=VALUE"));
    CHECK_THAT(error_of("dup=0.5:0"), Contains("'dup=0.5:0'"));
    CHECK_THAT(error_of("ttl=0"), Contains("'ttl=0'"));
    CHECK_THAT(error_of("error=unreach:0.7,error=ttl:0.5"), Contains("'error=ttl:0.5'"));
    CHECK_THAT(error_of("unsolicited=10"), Contains("'unsolicited=10'"));
    CHECK_THAT(error_of("198.18.0.0/16:unsolicited=10"), Contains("one address"));
    CHECK_THAT(error_of("198.18.0.300:loss=1"), Contains("bad target '198.18.0.300'"));
    CHECK_THAT(error_of("2001:db8::1:loss=1"), Contains("brackets"));
    CHECK_THAT(error_of("198.18.0.1:loss=1;delay=1ms"), Contains("must come first"));
    CHECK_THAT(error_of("198.18.0.1/40:loss=1"), Contains("prefix length"));
}

TEST_CASE("replies keep identifier, sequence and payload", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    network_simulator sim(config_with("ttl=33"));
    ping_socket sock(family);
    const sim_address to = target(family, 2);
    for (std::uint16_t seq = 1; seq <= 5; ++seq) {
        sock.send(to, seq);
        auto r = sock.receive(wait_limit);
        REQUIRE(r);
        CHECK(r->type == (family == AF_INET ? 0 : 129));
        CHECK(r->code == 0);
        CHECK(r->identifier == sock.identifier());
        CHECK(r->sequence == seq);
        CHECK(r->payload == payload_for(seq));
        CHECK(r->from == to);
        CHECK(r->ttl == 33);
    }
    REQUIRE(sim.wait_until_flushed(wait_limit));
    const auto rs = sim.requests();
    REQUIRE(rs.size() == 5);
    for (const request_record& r : rs) {
        INFO(r.to_string());
        CHECK(r.fate == request_fate::replied);
        CHECK(r.target == to);
        CHECK(r.source == sim.local_address(family));
        CHECK(r.identifier == sock.identifier());
        CHECK(r.payload_size == 56);
        REQUIRE(r.writes.size() == 1);
        CHECK(r.writes[0].kind == write_kind::reply);
        CHECK(r.writes[0].written >= r.writes[0].scheduled);
    }
    CHECK(sim.summary().replied == 5);
}

TEST_CASE("delay: fixed and uniform, within tolerance", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    const sim_address fixed = target(family, 2);
    const sim_address uniform = target(family, 3);
    network_simulator sim(config_with("delay=2ms;" + at(uniform) + "delay=uniform:1ms:3ms"));
    ping_socket sock(family);
    std::map<std::pair<sim_address, std::uint16_t>, nanoseconds> rtt;
    for (std::uint16_t seq = 0; seq < 40; ++seq) {
        const sim_address& to = seq % 2 == 0 ? fixed : uniform;
        const mono_time sent = sock.send(to, seq);
        auto r = sock.receive(wait_limit);
        REQUIRE(r);
        REQUIRE(r->sequence == seq);
        rtt[{to, seq}] = r->at - sent;
    }
    REQUIRE(sim.wait_until_flushed(wait_limit));
    std::vector<nanoseconds> excess;
    for (const request_record& r : sim.requests()) {
        INFO(r.to_string());
        if (r.target == fixed) {
            CHECK(r.delay == 2ms);
        } else {
            CHECK(r.delay >= 1ms);
            CHECK(r.delay <= 3ms);
        }
        const nanoseconds measured = rtt.at({r.target, r.sequence});
        CHECK(measured >= r.delay);                           // a reply never comes before its time
        CHECK(r.writes[0].scheduled - r.received == r.delay); // scheduled exactly
        CHECK(r.writes[0].written >= r.writes[0].scheduled);  // and never written early
        excess.push_back(measured - r.delay);
    }
    // How late replies come is the [timing] test's to print, not a bound a
    // busy machine could break; only a reply held back for something else
    // (the next request, a lost wake-up) would be a second late.
    CHECK(percentile(excess, 0.5) < 1s);
}

// Prints, per injected delay: how late the simulator wrote each reply
// (written - scheduled), how long the request took to reach it (received -
// sent: wake-up latency, what busy_poll removes), and the pinger's RTT minus
// the injected delay (everything a pinger adds on top of the truth).
TEST_CASE("timing precision of scheduled replies", "[netsim][timing]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    const bool busy_poll = GENERATE(false, true);
    simulator_config config = config_with("delay=100us;" + at(target(family, 3)) + "delay=1ms;" +
                                          at(target(family, 4)) + "delay=10ms");
    config.busy_poll = busy_poll;
    network_simulator sim(config);
    ping_socket sock(family);
    const scoped_realtime realtime;
    struct run {
        unsigned host;
        const char* name;
        int count;
    };
    for (const run& step : {run{2, "100us", 150}, run{3, "1ms", 100}, run{4, "10ms", 30}}) {
        const sim_address to = target(family, step.host);
        INFO(family_name(family) << (busy_poll ? " busy-poll" : " sleeping") << " delay "
                                 << step.name);
        const std::size_t first = sim.requests().size();
        std::map<std::uint16_t, std::pair<mono_time, nanoseconds>> pings; // sent, RTT
        for (int i = 0; i < step.count; ++i) {
            const auto seq = static_cast<std::uint16_t>(first + static_cast<std::size_t>(i));
            const mono_time sent = sock.send(to, seq);
            auto r = sock.receive(wait_limit);
            INFO("seq " << seq);
            if (!r)
                dump(sim);
            REQUIRE(r);
            pings[r->sequence] = {sent, r->at - sent};
        }
        REQUIRE(sim.wait_until_flushed(wait_limit));
        const auto rs = sim.requests();
        std::vector<nanoseconds> lateness;
        std::vector<nanoseconds> arrival;
        std::vector<nanoseconds> rtt_error;
        for (std::size_t i = first; i < rs.size(); ++i) {
            const auto& [sent, rtt] = pings.at(rs[i].sequence);
            lateness.push_back(rs[i].writes.at(0).written - rs[i].writes.at(0).scheduled);
            arrival.push_back(rs[i].received - sent);
            rtt_error.push_back(rtt - rs[i].delay);
        }
        std::printf("[netsim timing] %s %s delay %-5s: written - scheduled p50 %.1f p99 %.1f max "
                    "%.1f us | received - sent p50 %.1f p99 %.1f us | RTT - delay p50 %.1f p99 "
                    "%.1f us (%d pings, pinger %s)\n",
                    family_name(family), busy_poll ? "busy-poll" : "sleeping ", step.name,
                    us(percentile(lateness, 0.5)), us(percentile(lateness, 0.99)),
                    us(percentile(lateness, 1.0)), us(percentile(arrival, 0.5)),
                    us(percentile(arrival, 0.99)), us(percentile(rtt_error, 0.5)),
                    us(percentile(rtt_error, 0.99)), step.count,
                    realtime.active() ? "SCHED_FIFO" : "SCHED_OTHER");
        CHECK(*std::min_element(lateness.begin(), lateness.end()) >= 0ns);
        // The figures above are measurements, printed; none is a bound a
        // loaded machine could break (a busy-polling thread at nice 10 next
        // to busy cores runs a tenth of the time). A scheduler that waits
        // for the next request, or a wake-up that never comes, writes late
        // by far more than a second (or never, which REQUIRE(r) catches).
        CHECK(percentile(lateness, 0.5) < 1s);
        CHECK(*std::min_element(rtt_error.begin(), rtt_error.end()) >= 0ns);
    }
    std::fflush(stdout);
}

TEST_CASE("loss: the fraction dropped is near p, and the record is exact", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    const std::uint64_t seed = test_seed("netsim loss");
    std::mt19937_64 rng(seed);
    const double p = 0.1 + 0.4 * std::uniform_real_distribution<double>(0, 1)(rng);
    const std::string text = "loss=" + std::to_string(p) + ",delay=uniform:0:200us";
    INFO("profile: " << text);
    network_simulator sim(config_with(text, seed));
    ping_socket sock(family);
    const sim_address to = target(family, 5);
    constexpr int pings = 400;
    for (int seq = 0; seq < pings; ++seq)
        sock.send(to, static_cast<std::uint16_t>(seq));
    REQUIRE(sim.wait_for_requests(pings, wait_limit));
    REQUIRE(sim.wait_until_flushed(wait_limit));
    std::set<std::uint16_t> replied;
    int dropped = 0;
    for (const request_record& r : sim.requests()) {
        if (r.fate == request_fate::dropped)
            ++dropped;
        else
            replied.insert(r.sequence);
    }
    std::set<std::uint16_t> received;
    for (const echo_reply& r : sock.receive_n(replied.size()))
        received.insert(r.sequence);
    CHECK_FALSE(sock.receive(0ms)); // and nothing more
    std::vector<std::uint16_t> missing;
    std::set_symmetric_difference(received.begin(), received.end(), replied.begin(), replied.end(),
                                  std::back_inserter(missing));
    INFO(missing.size() << " sequences differ between the record and the socket");
    CHECK(received == replied); // exactly what the simulator says it sent
    const double fraction = static_cast<double>(dropped) / pings;
    INFO("dropped " << dropped << " of " << pings << ", p = " << p);
    CHECK(std::abs(fraction - p) < 0.1); // > 4 standard deviations for p <= 0.5
    CHECK(sim.summary().dropped == static_cast<std::uint64_t>(dropped));
}

TEST_CASE("decisions are deterministic given the seed", "[netsim]") {
    const std::uint64_t seed = test_seed("netsim determinism");
    const std::string text = "delay=exp:200us,loss=0.2,late=0.1:5ms,dup=0.2:2,"
                             "corrupt=sequence:0.2,corrupt=token:0.3,error=unreach:0.1;"
                             "198.18.0.6:loss=0.5";
    auto decide = [&](std::uint64_t s) {
        network_simulator sim(config_with(text, s));
        ping_socket v4(AF_INET);
        ping_socket v6(AF_INET6);
        for (std::uint16_t seq = 0; seq < 60; ++seq) {
            v4.send(target(AF_INET, 5 + seq % 2), seq);
            v6.send(target(AF_INET6, 5), seq);
        }
        REQUIRE(sim.wait_for_requests(120, wait_limit));
        std::map<std::tuple<sim_address, std::uint16_t>, std::string> out;
        for (const request_record& r : sim.requests())
            out[{r.target, r.sequence}] =
                std::string(fate_name(r.fate)) + " " + std::to_string(r.delay.count()) + " " +
                std::to_string(r.duplicates) + " " + std::to_string(r.corruptions);
        return out;
    };
    const auto first = decide(seed);
    CHECK(first == decide(seed));
    CHECK(first != decide(seed + 1));
}

TEST_CASE("duplicates arrive", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    network_simulator sim(config_with("dup=1:2:1ms"));
    ping_socket sock(family);
    const sim_address to = target(family, 2);
    for (std::uint16_t seq = 1; seq <= 3; ++seq)
        sock.send(to, seq);
    REQUIRE(sim.wait_for_requests(3, wait_limit));
    REQUIRE(sim.wait_until_flushed(wait_limit));
    std::map<std::uint16_t, int> copies;
    for (const echo_reply& r : sock.receive_n(9)) {
        CHECK(r.payload == payload_for(r.sequence));
        ++copies[r.sequence];
    }
    CHECK_FALSE(sock.receive(0ms)); // and nothing more
    CHECK(copies == std::map<std::uint16_t, int>{{1, 3}, {2, 3}, {3, 3}});
    for (const request_record& r : sim.requests()) {
        INFO(r.to_string());
        CHECK(r.duplicates == 2);
        REQUIRE(r.writes.size() == 3);
        CHECK(r.writes[1].kind == write_kind::duplicate);
        // GAP apart as scheduled, each written no earlier than scheduled
        // (not the written times' gap: an earlier copy written late
        // shortens it).
        CHECK(r.writes[1].scheduled - r.writes[0].scheduled == 1ms);
        CHECK(r.writes[2].scheduled - r.writes[1].scheduled == 1ms);
        for (const packet_write& w : r.writes)
            CHECK(w.written >= w.scheduled);
    }
    CHECK(sim.summary().duplicate_packets == 6);
}

TEST_CASE("corrupted replies", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    const sim_address checksum = target(family, 10);
    const sim_address sequence = target(family, 11);
    const sim_address token = target(family, 12);
    const sim_address truncate = target(family, 13);
    const sim_address code = target(family, 14);
    const sim_address source = target(family, 16);
    const sim_address type = target(family, 18);
    const sim_address ident = target(family, 19);
    network_simulator sim(
        config_with(at(checksum) + "corrupt=checksum:1;" + at(sequence) + "corrupt=sequence:1:5;" +
                    at(token) + "corrupt=token:1;" + at(truncate) + "corrupt=truncate:1:10;" +
                    at(code) + "corrupt=code:1:7;" + at(source) + "corrupt=source:1;" + at(type) +
                    "corrupt=type:1;" + at(ident) + "corrupt=identifier:1"));
    ping_socket sock(family);
    raw_icmp_socket raw(family);

    SECTION("a bad checksum is dropped by the kernel") {
        sock.send(checksum, 1);
        REQUIRE(sim.wait_for_requests(1, wait_limit));
        REQUIRE(sim.wait_until_flushed(wait_limit));
        CHECK_FALSE(sock.receive(200ms));
        const auto rs = sim.requests();
        CHECK(rs[0].corrupted(corruption::checksum));
        CHECK(rs[0].writes.at(0).written != mono_time{});
    }
    SECTION("a wrong sequence arrives with the changed sequence") {
        sock.send(sequence, 100);
        auto r = sock.receive(wait_limit);
        REQUIRE(r);
        CHECK(r->sequence == 105);
        CHECK(r->payload == payload_for(100));
        CHECK(sim.requests().at(0).reply_sequence == 105);
    }
    SECTION("a wrong token changes payload bytes 0..15 only") {
        sock.send(token, 1);
        auto r = sock.receive(wait_limit);
        REQUIRE(r);
        const auto sent = payload_for(1);
        REQUIRE(r->payload.size() == sent.size());
        for (std::size_t i = 0; i < sent.size(); ++i)
            CHECK(r->payload[i] == (i < 16 ? static_cast<std::uint8_t>(~sent[i]) : sent[i]));
    }
    SECTION("a truncated reply arrives cut short") {
        sock.send(truncate, 1);
        auto r = sock.receive(wait_limit);
        REQUIRE(r);
        const auto sent = payload_for(1);
        CHECK(r->payload == std::vector<std::uint8_t>(sent.begin(), sent.begin() + 10));
    }
    SECTION("a wrong code arrives") {
        sock.send(code, 1);
        auto r = sock.receive(wait_limit);
        REQUIRE(r);
        CHECK(r->code == 7);
        CHECK(r->sequence == 1);
    }
    SECTION("a reply from a different source address") {
        sock.send(source, 1);
        auto r = sock.receive(wait_limit);
        REQUIRE(r);
        CHECK(r->from == target(family, 17));
        CHECK(sim.requests().at(0).reply_source == target(family, 17));
    }
    SECTION("wrong type and wrong identifier never reach the ping socket") {
        sock.send(type, 1);
        sock.send(ident, 2);
        REQUIRE(sim.wait_for_requests(2, wait_limit));
        REQUIRE(sim.wait_until_flushed(wait_limit));
        CHECK_FALSE(sock.receive(200ms));
        // ... but they were on the wire, as a raw socket shows.
        const auto seen = raw.receive_until([&](const std::vector<echo_reply>& all) {
            return !only_from(all, type).empty() && !only_from(all, ident).empty();
        });
        const auto typed = only_from(seen, type);
        REQUIRE(typed.size() == 1);
        CHECK(typed[0].type == (family == AF_INET ? 253 : 200));
        CHECK(typed[0].sequence == 1);
        const auto wrong_id = only_from(seen, ident);
        REQUIRE(wrong_id.size() == 1);
        CHECK(wrong_id[0].identifier == static_cast<std::uint16_t>(sock.identifier() + 0x8000));
        CHECK(wrong_id[0].sequence == 2);
    }
}

TEST_CASE("ICMP errors arrive on the error queue from the router", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    const sim_address unreachable = target(family, 20);
    const sim_address expired = target(family, 21);
    const sim_address own_router = target(family, 22);
    const sim_address custom_router = target(family, 250);
    network_simulator sim(config_with(at(unreachable) + "error=unreach:1;" + at(expired) +
                                      "error=ttl:1,delay=1ms;" + at(own_router) +
                                      "error=unreach:1:0,router=" + custom_router.to_string()));
    ping_socket sock(family);
    const bool v4 = family == AF_INET;
    struct expectation {
        sim_address to;
        std::uint8_t type;
        std::uint8_t code;
        sim_address router;
    };
    const std::vector<expectation> cases = {
        {unreachable, std::uint8_t(v4 ? 3 : 1), std::uint8_t(v4 ? 1 : 3),
         sim.default_router(family)},
        {expired, std::uint8_t(v4 ? 11 : 3), 0, sim.default_router(family)},
        {own_router, std::uint8_t(v4 ? 3 : 1), 0, custom_router},
    };
    std::uint16_t seq = 40;
    for (const expectation& e : cases) {
        INFO("to " << e.to.to_string());
        sock.send(e.to, seq);
        auto err = sock.receive_error(wait_limit);
        REQUIRE(err);
        CHECK(err->origin == (v4 ? SO_EE_ORIGIN_ICMP : SO_EE_ORIGIN_ICMP6));
        CHECK(err->type == e.type);
        CHECK(err->code == e.code);
        CHECK(err->offender == e.router);
        // The queued data is the echo request the error quoted.
        REQUIRE(err->data.size() >= 8);
        CHECK((err->data[6] << 8 | err->data[7]) == seq);
        const auto r = find_request(sim, e.to, seq);
        REQUIRE(r);
        CHECK(r->fate == request_fate::error);
        CHECK(r->error_type == e.type);
        CHECK(r->error_code == e.code);
        CHECK(r->reply_source == e.router);
        ++seq;
    }
    CHECK(sim.summary().errors == 3);
}

TEST_CASE("late replies come after the pinger gave up", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    network_simulator sim(config_with("late=1:300ms"));
    ping_socket sock(family);
    const mono_time sent = sock.send(target(family, 2), 9);
    auto r = sock.receive(wait_limit);
    REQUIRE(r);
    CHECK(r->sequence == 9);
    CHECK(r->at - sent >= 300ms); // after a pinger's 100 ms timeout, say
    const auto rs = sim.requests();
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].fate == request_fate::late);
    CHECK(rs[0].delay == 300ms);
}

TEST_CASE("reordered replies are overtaken", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    const sim_address held = target(family, 30);
    const sim_address plain = target(family, 31);
    network_simulator sim(config_with(at(held) + "reorder=1:400ms"));
    ping_socket sock(family);

    sock.send(held, 1);
    REQUIRE(sim.wait_for_requests(1, wait_limit)); // held before the next request comes
    sock.send(plain, 2);
    auto first = sock.receive(wait_limit);
    auto second = sock.receive(wait_limit);
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->sequence == 2);
    CHECK(second->sequence == 1);
    const auto rs = sim.requests();
    REQUIRE(rs.size() == 2);
    CHECK(rs[0].reordered);
    CHECK(rs[0].writes.at(0).written >= rs[1].writes.at(0).written);

    // With nothing to overtake it, a held reply goes out after MAXHOLD.
    const mono_time sent = sock.send(held, 3);
    auto alone = sock.receive(wait_limit);
    REQUIRE(alone);
    CHECK(alone->sequence == 3);
    CHECK(alone->at - sent >= 400ms);
}

TEST_CASE("unsolicited echo replies", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    const sim_address chatty = target(family, 40);
    const mono_time before = mono_clock::now();
    network_simulator sim(config_with(at(chatty) + "unsolicited=100"));
    const mono_time started = mono_clock::now();
    raw_icmp_socket raw(family);

    SECTION("on demand, to a bound identifier") {
        ping_socket sock(family, 4242);
        sim.send_unsolicited(target(family, 41), sim.local_address(family), 4242, 77,
                             payload_for(77));
        auto r = sock.receive(wait_limit);
        REQUIRE(r);
        CHECK(r->identifier == 4242);
        CHECK(r->sequence == 77);
        CHECK(r->from == target(family, 41));
        CHECK(r->payload == payload_for(77));
        CHECK(sim.requests().empty());
    }
    SECTION("at a rate") {
        // 100 per second, evenly spaced from the start: scheduled exactly
        // 10 ms apart, each written no earlier than scheduled, so never more
        // than the time allows (how many were written by a given time is
        // the scheduler's business, not a bound).
        const mono_time give_up = mono_clock::now() + wait_limit;
        while (sim.unsolicited().size() < 30 && mono_clock::now() < give_up)
            std::this_thread::sleep_for(10ms); // polling for the count, not ordering
        const auto sent = sim.unsolicited();
        const mono_time now = mono_clock::now();
        REQUIRE(sent.size() >= 30);
        CHECK(sent.size() <= static_cast<std::size_t>((now - before) / 10ms));
        CHECK(sent.front().write.scheduled - started <= 10ms);
        for (std::size_t i = 0; i < sent.size(); ++i) {
            INFO("unsolicited reply " << i);
            CHECK(sent[i].source == chatty);
            CHECK(sent[i].destination == sim.local_address(family));
            CHECK(sent[i].write.written >= sent[i].write.scheduled);
            if (i > 0)
                CHECK(sent[i].write.scheduled - sent[i - 1].write.scheduled == 10ms);
        }
        const auto seen = only_from(raw.receive_until([&](const std::vector<echo_reply>& all) {
            return only_from(all, chatty).size() >= sent.size();
        }),
                                    chatty);
        CHECK(seen.size() >= sent.size());
        for (const echo_reply& r : seen)
            CHECK(r.type == (family == AF_INET ? 0 : 129));
    }
}

TEST_CASE("set_profile changes what happens to the next requests", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    network_simulator sim(config_with("loss=1"));
    ping_socket sock(family);
    sock.send(target(family, 2), 1);
    // Read under the old profile before it is replaced.
    REQUIRE(sim.wait_for_requests(1, wait_limit));
    sim.set_profile(profile::parse("delay=1ms"));
    sock.send(target(family, 2), 2);
    auto r = sock.receive(wait_limit);
    REQUIRE(r);
    CHECK(r->sequence == 2);
    const auto rs = sim.requests();
    REQUIRE(rs.size() == 2);
    CHECK(rs[0].fate == request_fate::dropped);
    CHECK(rs[1].fate == request_fate::replied);
    CHECK(rs[1].delay == 1ms);
}

TEST_CASE("packets other than echo requests are recorded", "[netsim]") {
    const int family = GENERATE(AF_INET, AF_INET6);
    INFO(family_name(family));
    network_simulator sim(config_with(""));
    const int fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    socklen_t len = 0;
    sockaddr_storage ss = to_sockaddr(target(family, 50), 9, len);
    const char data[] = "not a ping";
    CHECK(::sendto(fd, data, sizeof data, 0, reinterpret_cast<sockaddr*>(&ss), len) == sizeof data);
    ::close(fd);
    bool seen = false;
    const mono_time give_up = mono_clock::now() + wait_limit;
    while (!seen && mono_clock::now() < give_up) {
        for (const other_packet& o : sim.other_packets())
            seen = seen || (o.family == family && o.protocol == IPPROTO_UDP);
        if (!seen)
            std::this_thread::sleep_for(5ms); // polling for the record, not ordering
    }
    CHECK(seen);
    CHECK(sim.requests().empty());
}

TEST_CASE("shutdown removes the routes and the device", "[netsim]") {
    {
        network_simulator sim(config_with("loss=0.5"));
        ping_socket sock(AF_INET);
        sock.send(target(AF_INET, 2), 1);
        REQUIRE(sim.wait_for_requests(1, wait_limit));
    }
    // The prefix is unroutable again: nothing else in this namespace has it.
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    socklen_t len = 0;
    sockaddr_storage ss = to_sockaddr(target(AF_INET, 2), 9, len);
    CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == -1);
    CHECK(errno == ENETUNREACH);
    ::close(fd);
    // And the device name is free for the next simulator.
    network_simulator again(config_with(""));
    ping_socket sock(AF_INET6);
    sock.send(target(AF_INET6, 2), 1);
    CHECK(sock.receive(wait_limit));
}

TEST_CASE("the simulator refuses bad configurations", "[netsim]") {
    simulator_config c;
    c.v4_local = sim_address::parse("198.18.0.1"); // inside the routed prefix
    CHECK_THROWS_AS(network_simulator(c), std::invalid_argument);
    simulator_config d;
    d.device = "sim0; reboot";
    CHECK_THROWS_AS(network_simulator(d), std::invalid_argument);
    simulator_config e;
    e.v4_prefix = sim_prefix::parse("10.0.0.0/8"); // not a reserved range
    CHECK_THROWS_AS(network_simulator(e), std::invalid_argument);
}
