// System tests of icmpengine::ping_series and icmpengine::ping_fanout.
// support/system_main.cpp has moved this process into a private network
// namespace: pings go to loopback there, or into the network simulator
// (support/netsim.hpp), whose TUN device lives in the same namespace.
#include <catch2/catch.hpp>

#include "netns.hpp"
#include "netsim.hpp"
#include "seed.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <linux/if_packet.h>
#include <map>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::fanout_options;
using icmpengine::ip_address;
using icmpengine::ping_event;
using icmpengine::ping_fanout;
using icmpengine::ping_result;
using icmpengine::ping_status;
using icmpengine::series_options;
using icmpengine::series_result;
using icmpengine::stray_reply;
using icmpengine::task;
namespace testing = icmpengine::testing;

namespace {

using clock_type = std::chrono::steady_clock;
using ms = std::chrono::duration<double, std::milli>;

// Generous: the machines are small and shared, and sanitizers slow things.
constexpr auto timing_slack = 60ms;
// How much earlier than planned a request may leave, by the kernel's clock:
// the engine hands a request to the kernel in its next loop turn, so the
// request before it may have left late (a preempted process) and shortened
// the gap by as much.
constexpr auto send_jitter = 1ms;

ip_address addr(const char* text) {
    return ip_address::parse(text);
}

/// The simulator with `profile`, seeded (printed, replayable).
testing::simulator_config simulated(const std::string& profile, const char* test_name) {
    testing::simulator_config c;
    c.seed = testing::test_seed(test_name);
    c.profile = testing::profile::parse(profile);
    return c;
}

std::vector<testing::request_record> requests_to(const testing::network_simulator& sim,
                                                 const char* target) {
    std::vector<testing::request_record> out;
    const auto to = testing::sim_address::parse(target);
    for (auto& r : sim.requests())
        if (r.target == to)
            out.push_back(std::move(r));
    return out;
}

/// Runs a fan-out on an engine whose stray replies go to it, then keeps the
/// loop going for `linger` so that late replies can arrive.
void run_fanout(ping_fanout& fan, std::chrono::nanoseconds linger = 0ns,
                icmpengine::engine_config config = {}) {
    config.on_stray = [&fan](const stray_reply& s) { fan.on_stray(s); };
    engine eng(config);
    auto body = [](engine& e, ping_fanout& f, std::chrono::nanoseconds l) -> task<void> {
        co_await f.run(e);
        if (l > 0ns)
            co_await e.sleep_for(l);
    };
    eng.run(body(eng, fan, linger));
}

/// When echo requests left through a device, by the kernel's clock: the
/// send times, free of the jitter of any user-space reader (AF_PACKET,
/// SOCK_DGRAM, so lo and TUN alike start at the IP header).
class send_capture {
  public:
    explicit send_capture(const char* device) {
        m_fd = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
        REQUIRE(m_fd >= 0);
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(ETH_P_ALL);
        sll.sll_ifindex = static_cast<int>(::if_nametoindex(device));
        REQUIRE(sll.sll_ifindex != 0);
        REQUIRE(::bind(m_fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) == 0);
        const int on = 1;
        REQUIRE(::setsockopt(m_fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) == 0);
        // Room for thousands of packets (each also seen incoming on lo).
        const int room = 64 << 20;
        REQUIRE(::setsockopt(m_fd, SOL_SOCKET, SO_RCVBUFFORCE, &room, sizeof room) == 0);
        wait_for_transmit_stamps();
    }
    ~send_capture() { ::close(m_fd); }
    send_capture(const send_capture&) = delete;
    send_capture& operator=(const send_capture&) = delete;

    /// Send times of the echo requests seen so far, in order.
    std::vector<std::chrono::nanoseconds> requests() {
        std::vector<std::chrono::nanoseconds> out;
        for (const auto& [time, destination] : requests_with_destination())
            out.push_back(time);
        return out;
    }

    /// The same with each request's IPv4 destination (host order; 0 for IPv6).
    std::vector<std::pair<std::chrono::nanoseconds, std::uint32_t>> requests_with_destination() {
        std::vector<std::pair<std::chrono::nanoseconds, std::uint32_t>> out;
        while (const std::optional<captured> p = read_one()) {
            const unsigned char* packet = p->packet.data();
            const std::size_t n = p->length;
            const bool v4_echo = n >= 28 && packet[0] >> 4 == 4 && packet[9] == IPPROTO_ICMP &&
                                 packet[(packet[0] & 0xf) * 4] == 8;
            const bool v6_echo =
                n >= 48 && packet[0] >> 4 == 6 && packet[6] == IPPROTO_ICMPV6 && packet[40] == 128;
            if (!p->outgoing || !(v4_echo || v6_echo) || !p->stamp)
                continue;
            const std::uint32_t destination =
                v4_echo ? std::uint32_t{packet[16]} << 24 | std::uint32_t{packet[17]} << 16 |
                              std::uint32_t{packet[18]} << 8 | packet[19]
                        : 0;
            out.emplace_back(*p->stamp, destination);
        }
        return out;
    }

  private:
    /// One packet as read from the capture socket.
    struct captured {
        std::array<unsigned char, 2048> packet;
        std::size_t length;
        bool outgoing;
        std::optional<std::chrono::nanoseconds> stamp; ///< SCM_TIMESTAMPNS, CLOCK_REALTIME
    };

    /// The next packet queued on the socket, if any (never waits).
    std::optional<captured> read_one() {
        captured c{};
        alignas(cmsghdr) unsigned char control[256];
        sockaddr_ll from{};
        iovec iov{c.packet.data(), c.packet.size()};
        msghdr msg{};
        msg.msg_name = &from;
        msg.msg_namelen = sizeof from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(m_fd, &msg, MSG_DONTWAIT);
        if (n <= 0)
            return std::nullopt;
        c.length = static_cast<std::size_t>(n);
        c.outgoing = from.sll_pkttype == PACKET_OUTGOING;
        for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
                timespec ts{};
                std::memcpy(&ts, CMSG_DATA(h), sizeof ts);
                c.stamp =
                    std::chrono::nanoseconds(std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec);
            }
        return c;
    }

    static std::chrono::nanoseconds realtime() {
        timespec ts{};
        ::clock_gettime(CLOCK_REALTIME, &ts);
        return std::chrono::nanoseconds(std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec);
    }

    /// SO_TIMESTAMPNS turns on the kernel's packet timestamps through a
    /// deferred work item: packets that leave before it ran carry no stamp
    /// and get the time they are read instead (seen as requests 150 ms out
    /// of order). Sends UDP probes on lo until one is stamped before it is
    /// read (the probes are no echo requests: requests() skips them).
    void wait_for_transmit_stamps() {
        const int probe = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(probe >= 0);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(9);
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool live = false;
        for (int attempt = 0; attempt < 1000 && !live; ++attempt) {
            REQUIRE(::sendto(probe, "x", 1, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) ==
                    1);
            ::usleep(1000);
            const std::chrono::nanoseconds before_read = realtime();
            while (const std::optional<captured> p = read_one())
                live = live || (p->stamp && *p->stamp < before_read);
        }
        ::close(probe);
        REQUIRE(live);
    }

    int m_fd = -1;
};

/// Mean and population standard deviation the two-pass way, for checking
/// the statistics' online results.
std::pair<double, double> two_pass(const std::vector<double>& xs) {
    double sum = 0;
    for (double x : xs)
        sum += x;
    const double mean = sum / static_cast<double>(xs.size());
    double ss = 0;
    for (double x : xs)
        ss += (x - mean) * (x - mean);
    return {mean, std::sqrt(ss / static_cast<double>(xs.size()))};
}

} // namespace

TEST_CASE("a series sends on schedule without waiting for replies", "[series]") {
    testing::network_simulator sim(simulated("delay=50ms", "series schedule"));
    engine eng;
    const auto t0 = clock_type::now();
    const series_result s = eng.run(icmpengine::ping_series(
        eng, addr("198.18.0.2"), {.count = 5, .period = 10ms, .timeout = 1s}));
    const auto took = clock_type::now() - t0;
    INFO("took " << ms(took).count() << " ms");
    // Waiting for each reply before the next ping would take 5 x 50 ms.
    CHECK(took >= 40ms + 50ms);
    CHECK(took < 90ms + timing_slack);
    REQUIRE(s.finished);
    CHECK(s.target == addr("198.18.0.2"));
    REQUIRE(s.results.size() == 5);
    for (const ping_result& r : s.results) {
        CHECK(r.status == ping_status::reply);
        CHECK(r.rtt >= 50ms);
    }
    for (std::size_t k = 1; k < 5; ++k)
        CHECK(s.results[k].sequence != s.results[k - 1].sequence);
    CHECK(s.sent == 5);
    CHECK(s.in_flight == 0);
    CHECK(s.statistics.resolved() == 5);
    CHECK(s.statistics.received() == 5);
    CHECK(s.statistics.loss_fraction() == 0.0);
    CHECK(s.statistics.rtt_min() >= 50ms);
    CHECK(s.alive());
    CHECK(requests_to(sim, "198.18.0.2").size() == 5);
}

TEST_CASE("ping k leaves at t0 + k x period, by the kernel's clock", "[series]") {
    // Captured on lo (the simulator's TUN device stamps its first packet
    // late, so it cannot serve as the clock).
    testing::scoped_sysctl ignore("net.ipv4.icmp_echo_ignore_all", "1");
    send_capture sent("lo");
    engine eng;
    const series_result s = eng.run(icmpengine::ping_series(
        eng, addr("127.0.0.1"), {.count = 6, .period = 15ms, .timeout = 100ms}));
    CHECK(s.statistics.timeouts() == 6);
    const auto at = sent.requests();
    REQUIRE(at.size() == 6);
    for (std::size_t k = 1; k < at.size(); ++k) {
        const auto offset = at[k] - at[0];
        const auto planned = 15ms * static_cast<int>(k);
        INFO("ping " << k << " at " << ms(offset).count() << " ms");
        CHECK(offset >= planned - send_jitter);
        CHECK(offset < planned + timing_slack);
    }
}

TEST_CASE("an unpaced fan-out sends each period's pings together and none closer than the period",
          "[series]") {
    // The series start on a grid shared by all targets (a tenth of the
    // period, at most 1 ms), so ping k of every target leaves in the same
    // wake-up or the next grid step, not each on its own phase.
    testing::scoped_sysctl ignore("net.ipv4.icmp_echo_ignore_all", "1");
    send_capture sent("lo");
    constexpr std::uint32_t n = 200;
    constexpr int count = 5;
    constexpr auto period = 20ms;
    std::vector<ip_address> targets;
    for (std::uint32_t i = 0; i < n; ++i)
        targets.push_back(ip_address::from_v4(0x7f020001 + i));
    ping_fanout fan(targets, {.series = {.count = count, .period = period, .timeout = 10ms}});
    run_fanout(fan);
    std::map<std::uint32_t, std::vector<std::chrono::nanoseconds>> by_target;
    for (const auto& [time, destination] : sent.requests_with_destination())
        by_target[destination].push_back(time);
    REQUIRE(by_target.size() == n);
    // Per ping number, the earliest and latest send over all targets.
    std::vector<std::chrono::nanoseconds> first(count, std::chrono::nanoseconds::max());
    std::vector<std::chrono::nanoseconds> last(count, std::chrono::nanoseconds::min());
    for (const auto& [destination, times] : by_target) {
        REQUIRE(times.size() == count);
        for (int k = 0; k < count; ++k) {
            first[k] = std::min(first[k], times[k]);
            last[k] = std::max(last[k], times[k]);
            if (k == 0)
                continue;
            const auto gap = times[k] - times[k - 1];
            INFO("target " << destination << " ping " << k << " gap " << ms(gap).count() << " ms");
            CHECK(gap >= period - send_jitter);
            // Rounded up to the grid at most once, on ping 1.
            CHECK(gap < period + 1ms + timing_slack);
        }
    }
    for (int k = 1; k < count; ++k) {
        INFO("ping " << k << ": sent over " << ms(last[k] - first[k]).count() << " ms; ping 0 over "
                     << ms(last[0] - first[0]).count() << " ms");
        // All within the grid steps ping 0 spanned, plus one.
        CHECK(last[k] - first[k] <= last[0] - first[0] + 1ms + send_jitter);
    }
    CHECK(fan.progress().targets_finished == n);
}

TEST_CASE("a series on loopback, both families", "[series]") {
    engine eng;
    for (const char* target : {"127.0.0.1", "::1"}) {
        INFO(target);
        const series_result s = eng.run(icmpengine::ping_series(
            eng, addr(target),
            {.count = 3, .period = 5ms, .timeout = 1s, .ping = {.payload_size = 100}}));
        REQUIRE(s.results.size() == 3);
        for (const ping_result& r : s.results) {
            CHECK(r.status == ping_status::reply);
            CHECK(r.bytes == 100);
        }
        CHECK(s.statistics.received() == 3);
        CHECK(s.statistics.rtt_stddev_population().has_value());
    }
}

TEST_CASE("statistics are exact against what the simulator did", "[series][stats]") {
    testing::network_simulator sim(
        simulated("delay=uniform:1ms:9ms,loss=0.3;198.18.0.9:loss=1", "series exact"));
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.3"), addr("198.18.0.9")},
                    {.series = {.count = 30, .period = 2ms, .timeout = 500ms}});
    run_fanout(fan);
    const series_result& lossy = fan.series()[0];
    const auto records = requests_to(sim, "198.18.0.3");
    REQUIRE(records.size() == 30);
    std::uint64_t dropped = 0;
    for (const auto& r : records)
        dropped += r.fate == testing::request_fate::dropped ? 1 : 0;
    INFO("dropped " << dropped);
    CHECK(lossy.statistics.resolved() == 30);
    CHECK(lossy.statistics.timeouts() == dropped);
    CHECK(lossy.statistics.received() == 30 - dropped);
    CHECK(lossy.statistics.loss_fraction() == Approx(static_cast<double>(dropped) / 30.0));
    // RTT statistics over the replies only, matching a two-pass computation.
    std::vector<double> rtts;
    for (const ping_result& r : lossy.results)
        if (r.status == ping_status::reply)
            rtts.push_back(static_cast<double>(r.rtt.count()));
        else
            CHECK(r.rtt == 0ns);
    REQUIRE(rtts.size() == 30 - dropped);
    const auto [mean, sd] = two_pass(rtts);
    CHECK(lossy.statistics.rtt_mean()->count() == Approx(mean).epsilon(1e-9));
    CHECK(lossy.statistics.rtt_stddev_population()->count() == Approx(sd).epsilon(1e-6));
    CHECK(lossy.statistics.rtt_min()->count() ==
          static_cast<std::int64_t>(*std::min_element(rtts.begin(), rtts.end())));
    CHECK(lossy.statistics.rtt_max()->count() ==
          static_cast<std::int64_t>(*std::max_element(rtts.begin(), rtts.end())));
    const series_result& dead = fan.series()[1];
    CHECK(dead.statistics.resolved() == 30);
    CHECK(dead.statistics.received() == 0);
    CHECK(dead.statistics.loss_fraction() == 1.0);
    CHECK_FALSE(dead.statistics.rtt_mean());
    CHECK_FALSE(dead.alive());
    CHECK(fan.progress().targets_alive == 1);
    CHECK(fan.progress().targets_finished == 2);
    CHECK(fan.progress().replies == 30 - dropped);
    CHECK(fan.progress().timeouts == 30 + dropped);
    CHECK(fan.progress().sent == 60);
    CHECK(fan.progress().in_flight == 0);
}

TEST_CASE("duplicates, late replies and ICMP errors are attributed to their target",
          "[series][stray]") {
    // Timeouts generous enough for a loaded machine; late replies well after.
    testing::network_simulator sim(simulated("198.18.0.4:dup=1:2:1ms;198.18.0.5:late=1:300ms;"
                                             "198.18.0.6:error=unreach:1;"
                                             "[2001:db8:5::4]:dup=1:1",
                                             "series strays"));
    std::vector<std::pair<std::size_t, stray_reply::kind>> strays;
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.4"), addr("198.18.0.5"),
                                            addr("198.18.0.6"), addr("2001:db8:5::4")},
                    {.series = {.count = 4, .period = 5ms, .timeout = 150ms},
                     .on_stray = [&](const icmpengine::stray_event& e) {
                         strays.emplace_back(e.target, e.reply.what);
                         CHECK(e.series.target == fan.series()[e.target].target);
                     }});
    run_fanout(fan, 350ms); // the late replies come 300 ms after their pings
    const series_result& dup = fan.series()[0];
    CHECK(dup.statistics.received() == 4);
    CHECK(dup.statistics.duplicates() == 8);
    CHECK(dup.statistics.rtt_history().empty());
    CHECK(dup.late_replies == 0);
    const series_result& late = fan.series()[1];
    CHECK(late.statistics.received() == 0);
    CHECK(late.statistics.timeouts() == 4);
    CHECK(late.late_replies == 4);
    CHECK(late.statistics.duplicates() == 0);
    const series_result& error = fan.series()[2];
    CHECK(error.statistics.resolved() == 4);
    CHECK(error.statistics.icmp_errors() == 4);
    CHECK(error.statistics.received() == 0);
    CHECK(error.statistics.loss_fraction() == 1.0);
    for (const ping_result& r : error.results) {
        CHECK(r.status == ping_status::unreachable);
        CHECK(r.from == addr("198.18.255.254")); // the simulator's router
    }
    CHECK(fan.series()[3].statistics.duplicates() == 4);
    CHECK(fan.progress().duplicates == 12);
    CHECK(fan.progress().late_replies == 4);
    CHECK(fan.progress().icmp_errors == 4);
    CHECK(std::count_if(strays.begin(), strays.end(), [](const auto& s) {
              return s.first == 1 && s.second == stray_reply::kind::late;
          }) == 4);
    CHECK(strays.size() == 16);
}

TEST_CASE("out-of-order replies are counted", "[series][stats]") {
    testing::network_simulator sim(simulated("delay=uniform:0ms:40ms", "series reorder"));
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.7")},
                    {.series = {.count = 20, .period = 2ms, .timeout = 1s}});
    run_fanout(fan);
    const series_result& s = fan.series()[0];
    CHECK(s.statistics.received() == 20);
    // Reconstruct the arrival order from the simulator's write times.
    auto records = requests_to(sim, "198.18.0.7");
    REQUIRE(records.size() == 20);
    std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) {
        return a.writes.at(0).written < b.writes.at(0).written;
    });
    // Request index in send order: the simulator numbers them on arrival,
    // which is send order for one target on one link.
    std::uint64_t expected = 0;
    std::uint64_t highest = 0;
    bool any = false;
    const std::uint64_t first = requests_to(sim, "198.18.0.7").front().index;
    for (const auto& r : records) {
        const std::uint64_t k = r.index - first;
        if (any && k < highest)
            ++expected;
        else
            highest = k;
        any = true;
    }
    INFO("expected out of order " << expected);
    CHECK(expected > 0);
    // Writes microseconds apart may reach the socket in either order.
    CHECK(s.statistics.out_of_order() >= expected - std::min<std::uint64_t>(expected, 2));
    CHECK(s.statistics.out_of_order() <= expected + 2);
}

TEST_CASE("single-shot mode retries after a timeout and stops at the first reply",
          "[series][retry]") {
    testing::scoped_sysctl ignore("net.ipv4.icmp_echo_ignore_all", "1");
    send_capture sent("lo");
    ping_fanout fan(std::vector<ip_address>{addr("127.0.0.8"), addr("::1")},
                    {.series = {.count = 3, .timeout = 50ms, .until_reply = true}});
    const auto t0 = clock_type::now();
    run_fanout(fan);
    const auto took = clock_type::now() - t0;
    const series_result& dead = fan.series()[0];
    CHECK(dead.sent == 3);
    CHECK(dead.statistics.timeouts() == 3);
    // One at a time: each attempt after the previous one timed out.
    CHECK(took >= 150ms);
    CHECK(took < 150ms + timing_slack);
    const auto at = sent.requests(); // three attempts to 127.0.0.8, one ping to ::1
    REQUIRE(at.size() == 4);
    INFO("send times (ns): " << at[0].count() << " " << at[1].count() << " " << at[2].count() << " "
                             << at[3].count());
    CHECK(at[2] - at[1] >= 50ms - send_jitter);
    CHECK(at[3] - at[2] >= 50ms - send_jitter);
    const series_result& alive = fan.series()[1];
    CHECK(alive.sent == 1);
    CHECK(alive.statistics.received() == 1);
    CHECK(alive.alive());
}

TEST_CASE("a global pace spaces every request of the fan-out", "[series][pace]") {
    std::vector<ip_address> targets;
    for (std::uint32_t i = 1; i <= 10; ++i)
        targets.push_back(ip_address::from_v4(0x7f010000u + i)); // 127.1.0.x
    send_capture sent("lo");
    // Sends at least `pace` apart by the kernel's clock.
    auto check_gaps = [&](std::size_t n, std::chrono::nanoseconds pace) {
        const auto at = sent.requests();
        REQUIRE(at.size() == n);
        for (std::size_t i = 1; i < at.size(); ++i) {
            INFO("gap " << i << ": " << ms(at[i] - at[i - 1]).count() << " ms");
            CHECK(at[i] - at[i - 1] >= pace - send_jitter);
        }
        return at.back() - at.front();
    };
    SECTION("pace 8 ms, one ping each") {
        ping_fanout fan(targets, {.series = {.count = 1, .timeout = 1s}, .pace = 8ms});
        run_fanout(fan);
        const auto span = check_gaps(10, 8ms);
        CHECK(span < 72ms + timing_slack);
        CHECK(fan.progress().targets_alive == 10);
    }
    SECTION("pace and period together: the slower one rules") {
        const std::vector<ip_address> two(targets.begin(), targets.begin() + 2);
        ping_fanout fan(two, {.series = {.count = 3, .period = 5ms, .timeout = 1s}, .pace = 10ms});
        run_fanout(fan);
        check_gaps(6, 10ms);
    }
    SECTION("a tiny pace with many targets: no deep recursion, every ping sent once") {
        std::vector<ip_address> many;
        for (std::uint32_t i = 1; i <= 3000; ++i)
            many.push_back(ip_address::from_v4(0x7f020000u + i));
        ping_fanout fan(many, {.series = {.count = 1, .timeout = 1s}, .pace = 1ns});
        run_fanout(fan);
        CHECK(fan.progress().replies == 3000);
        CHECK(sent.requests().size() == 3000);
    }
    SECTION("a stop while many wait for their turn releases them all") {
        std::vector<ip_address> many;
        for (std::uint32_t i = 1; i <= 2000; ++i)
            many.push_back(ip_address::from_v4(0x7f030000u + i));
        ping_fanout fan(many, {.series = {.count = 1, .timeout = 1s}, .pace = 5ms});
        engine eng;
        eng.spawn([](engine& e, ping_fanout& f) -> task<void> {
            co_await e.sleep_for(22ms);
            f.request_stop();
        }(eng, fan));
        eng.run(fan.run(eng));
        CHECK(fan.progress().targets_finished == 2000);
        CHECK(fan.progress().sent >= 2); // about 5 (at 0, 5, ... 20 ms) unless stalled
        CHECK(fan.progress().sent <= 6);
        CHECK(sent.requests().size() == fan.progress().sent);
    }
    SECTION("unpaced, all at once") {
        ping_fanout fan(targets, {.series = {.count = 1, .timeout = 1s}});
        const auto t0 = clock_type::now();
        run_fanout(fan);
        CHECK(clock_type::now() - t0 < timing_slack);
        CHECK(fan.progress().replies == 10);
    }
}

TEST_CASE("request_stop: no more sends, pings in flight still resolve", "[series][stop]") {
    testing::network_simulator sim(simulated("delay=100ms", "series stop"));
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.11"), addr("2001:db8:5::11")},
                    {.series = {.count = 0, .period = 10ms, .timeout = 1s, .keep_results = false}});
    engine eng({.on_stray = [&](const stray_reply& s) { fan.on_stray(s); }});
    std::uint64_t started_at_stop = 0;
    auto stopper = [&](engine& e) -> task<void> {
        co_await e.sleep_for(35ms);
        fan.request_stop();
        started_at_stop = fan.progress().sent;
    };
    eng.spawn(stopper(eng));
    const auto t0 = clock_type::now();
    eng.run(fan.run(eng));
    const auto took = clock_type::now() - t0;
    INFO("took " << ms(took).count() << " ms, started " << started_at_stop);
    CHECK(fan.stop_requested());
    CHECK(started_at_stop >= 4);
    CHECK(fan.progress().sent == started_at_stop); // nothing sent after the stop
    // The in-flight pings were waited for: their replies came at 100 ms.
    CHECK(took >= 100ms);
    for (const series_result& s : fan.series()) {
        CHECK(s.finished);
        CHECK(s.results.empty()); // keep_results = false
        CHECK(s.in_flight == 0);
        CHECK(s.statistics.resolved() == s.sent);
        CHECK(s.statistics.received() == s.sent);
        CHECK(s.statistics.cancelled() == 0);
    }
}

TEST_CASE("engine::stop cancels pings in flight; they are left out of the statistics",
          "[series][stop]") {
    testing::network_simulator sim(simulated("loss=1", "series cancel"));
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.12")},
                    {.series = {.count = 0, .period = 10ms, .timeout = 10s}});
    engine eng;
    auto stopper = [](engine& e) -> task<void> {
        co_await e.sleep_for(35ms);
        e.stop();
    };
    eng.spawn(stopper(eng));
    const auto t0 = clock_type::now();
    eng.run(fan.run(eng));
    CHECK(clock_type::now() - t0 < 35ms + timing_slack);
    const series_result& s = fan.series()[0];
    CHECK(s.finished);
    CHECK(s.sent >= 3);
    CHECK(s.statistics.cancelled() == s.sent);
    CHECK(s.statistics.resolved() == 0);
    CHECK(s.statistics.loss_fraction() == 0.0);
    for (const ping_result& r : s.results)
        CHECK(r.status == ping_status::cancelled);
    CHECK(fan.progress().cancelled == s.sent);
}

TEST_CASE("a caller's stop token stops the fan-out like request_stop", "[series][stop]") {
    std::stop_source source;
    ping_fanout fan(
        std::vector<ip_address>{addr("127.0.0.1")},
        {.series = {.count = 0, .period = 5ms, .timeout = 1s, .stop = source.get_token()}});
    engine eng;
    eng.spawn([](engine& e, std::stop_source& s) -> task<void> {
        co_await e.sleep_for(22ms);
        s.request_stop();
    }(eng, source));
    eng.run(fan.run(eng));
    CHECK(fan.stop_requested());
    CHECK(fan.series()[0].sent >= 3);
    CHECK(fan.series()[0].statistics.received() == fan.series()[0].sent);
}

TEST_CASE("fan-out: duplicate targets are pinged once, first-seen order kept", "[series]") {
    const std::vector<ip_address> targets{addr("127.0.0.3"), addr("::1"), addr("127.0.0.3"),
                                          addr("127.0.0.2"), addr("::1")};
    std::vector<std::size_t> seen;
    ping_fanout fan(targets,
                    {.series = {.count = 2, .period = 1ms, .timeout = 1s, .rtt_history = 2},
                     .on_ping = [&](const ping_event& e) {
                         seen.push_back(e.target);
                         CHECK(e.series.statistics.resolved() >= 1);
                         CHECK(e.result.status == ping_status::reply);
                     }});
    REQUIRE(fan.series().size() == 3);
    CHECK(fan.series()[0].target == addr("127.0.0.3"));
    CHECK(fan.series()[1].target == addr("::1"));
    CHECK(fan.series()[2].target == addr("127.0.0.2"));
    CHECK(fan.progress().targets == 3);
    run_fanout(fan);
    CHECK(seen.size() == 6);
    for (const series_result& s : fan.series()) {
        REQUIRE(s.statistics.rtt_history().size() == 2);
        CHECK(s.statistics.rtt_history()[0].has_value());
        CHECK(s.statistics.rtt_history()[1].has_value());
    }
}

TEST_CASE("on_stray attributes by source address and ignores strangers", "[series][stray]") {
    ping_fanout fan(std::vector<ip_address>{addr("192.0.2.1"), addr("2001:db8::1")}, {});
    fan.on_stray({stray_reply::kind::duplicate, addr("2001:db8::1"), 7});
    fan.on_stray({stray_reply::kind::late, addr("192.0.2.1"), 8});
    fan.on_stray({stray_reply::kind::late, addr("192.0.2.1"), 9});
    fan.on_stray({stray_reply::kind::duplicate, addr("192.0.2.99"), 1});
    CHECK(fan.series()[0].late_replies == 2);
    CHECK(fan.series()[0].statistics.duplicates() == 0);
    CHECK(fan.series()[1].statistics.duplicates() == 1);
    CHECK(fan.progress().duplicates == 1);
    CHECK(fan.progress().late_replies == 2);
}

TEST_CASE("an exception from a callback stops the fan-out and is rethrown", "[series]") {
    int calls = 0;
    ping_fanout fan(
        std::vector<ip_address>{addr("127.0.0.1"), addr("::1")},
        {.series = {.count = 0, .period = 5ms, .timeout = 1s}, .on_ping = [&](const ping_event&) {
             if (++calls == 3)
                 throw std::runtime_error("callback boom");
         }});
    engine eng;
    CHECK_THROWS_WITH(eng.run(fan.run(eng)), "callback boom");
    CHECK(fan.stop_requested());
    for (const series_result& s : fan.series())
        CHECK(s.finished);
    CHECK_THROWS_AS(eng.run(fan.run(eng)), std::logic_error); // runs once
}

TEST_CASE("an exception from on_stray stops the fan-out and is rethrown by run()",
          "[series][stray]") {
    // 20 us timeouts on loopback: replies come late, so strays arrive from
    // inside the engine's completion processing.
    std::vector<ip_address> targets;
    for (std::uint32_t i = 0; i < 2000; ++i)
        targets.push_back(ip_address::from_v4(0x7f010001 + i));
    ping_fanout fan(targets, {.series = {.count = 3, .period = 10ms, .timeout = 20us},
                              .on_stray = [](const icmpengine::stray_event&) {
                                  throw std::runtime_error("on_stray failed");
                              }});
    engine eng({.on_stray = [&fan](const stray_reply& s) { fan.on_stray(s); }});
    CHECK_THROWS_WITH(eng.run(fan.run(eng)), "on_stray failed");
    CHECK(fan.progress().in_flight == 0);
    CHECK(fan.progress().targets_finished == targets.size());
    CHECK(eng.stats().in_flight == 0);
}

TEST_CASE("single-shot mode without an attempt limit ends when the engine stops",
          "[series][retry][stop]") {
    ping_fanout fan(std::vector<ip_address>{addr("127.0.0.1")},
                    {.series = {.count = 0, .timeout = 30ms, .until_reply = true}});
    engine eng({.fake_drop_probability = 1.0}); // every attempt times out
    auto body = [](engine& e, ping_fanout& f) -> task<void> {
        auto stopper = [](engine& en) -> task<void> {
            co_await en.sleep_for(100ms);
            en.stop();
        };
        e.spawn(stopper(e));
        co_await f.run(e);
    };
    eng.run(body(eng, fan));
    const series_result& s = fan.series()[0];
    CHECK(s.finished);
    CHECK(s.sent >= 2);
    CHECK(s.sent <= 5);
}

TEST_CASE("invalid options throw std::invalid_argument naming the value", "[series][args]") {
    const std::vector<ip_address> one{addr("127.0.0.1")};
    auto message = [&](fanout_options o) -> std::string {
        try {
            ping_fanout fan(one, std::move(o));
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "(no exception)";
    };
    CHECK_THAT(message({.series = {.timeout = 0ns}}), Catch::Contains("timeout = 0 ns"));
    CHECK_THAT(message({.series = {.timeout = -1s}}), Catch::Contains("timeout = -1000000000"));
    CHECK_THAT(message({.series = {.count = 5, .period = 0ns}}),
               Catch::Contains("period = 0 ns") && Catch::Contains("5 pings"));
    CHECK_THAT(message({.series = {.count = 0, .period = 0ns}}), Catch::Contains("unlimited"));
    CHECK_THAT(message({.series = {.ping = {.payload_size = 70000}}}),
               Catch::Contains("payload_size = 70000"));
    CHECK_THAT(message({.pace = -1ms}), Catch::Contains("pace = -1000000 ns"));
    // One ping needs no period; single-shot mode ignores it.
    CHECK(message({.series = {.count = 1, .period = 0ns}}) == "(no exception)");
    CHECK(message({.series = {.count = 3, .period = 0ns, .until_reply = true}}) ==
          "(no exception)");
    engine eng;
    CHECK_THROWS_AS(icmpengine::ping_series(eng, addr("127.0.0.1"), {.timeout = 0ns}),
                    std::invalid_argument);
}
