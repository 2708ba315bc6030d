// SPDX-License-Identifier: MIT
// System tests of continuous mode (tools/exporter/continuous.hpp): the
// prober on a Boost.Asio io_context run by the test thread, pinging
// loopback (127.x, ::1), the silent target (routed into lo, never
// answered) and the network simulator's targets (delay, duplicates, ICMP
// errors), all inside the private namespace support/system_main.cpp made.
// Every wait is for a count to be reached, checked every 50 ms; the only
// time bound is a watchdog far from normal.
#include <catch2/catch.hpp>

#include "continuous.hpp"
#include "engine_test.hpp"
#include "exposition_text.hpp"
#include "netsim.hpp"
#include "promtool_check.hpp"
#include "sim_targets.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <sys/wait.h>
#include <vector>

using namespace std::chrono_literals;
namespace net = boost::asio;
namespace ex = icmpengine_exporter;
using icmpengine::ip_address;
using icmpengine::testing::check_with_promtool;
using icmpengine::testing::exposition_page;
using icmpengine::testing::parse_exposition;
using icmpengine::testing::silent_target;

namespace {

/// Only there so that a broken test fails instead of hanging.
constexpr std::chrono::seconds watchdog = 60s;

/// smokeping_prober's default buckets.
const std::vector<double> default_buckets = {
    5e-05,  0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128,  0.0256,
    0.0512, 0.1024, 0.2048, 0.4096, 0.8192, 1.6384, 3.2768, 6.5536, 13.1072, 26.2144};

ex::continuous_options options(std::chrono::nanoseconds timeout = 0ns) {
    ex::continuous_options o;
    o.buckets = default_buckets;
    o.timeout = timeout;
    return o;
}

ex::target_spec spec(const std::string& host, std::chrono::nanoseconds interval = 100ms) {
    ex::target_spec s;
    s.host = host;
    s.ip = ip_address::parse(host);
    s.interval = interval;
    return s;
}

std::map<std::string, std::string> labels_of(const ex::target_spec& s) {
    std::map<std::string, std::string> l{{"ip", s.ip.to_string()},
                                         {"host", s.host},
                                         {"source", s.source},
                                         {"tos", std::to_string(s.tos)}};
    for (const auto& [k, v] : s.labels)
        l.emplace(k, v);
    return l;
}

/// The prober on an io_context that this thread runs in steps.
struct harness {
    net::io_context ctx{1};
    std::optional<ex::continuous_prober> prober;

    explicit harness(ex::continuous_options o) { prober.emplace(ctx.get_executor(), std::move(o)); }

    /// Runs the io_context until done() holds (checked every 50 ms: a poll,
    /// not a bound); false if the watchdog ran out first.
    bool run_until(const std::function<bool()>& done) {
        bool ok = false;
        const auto give_up = std::chrono::steady_clock::now() + watchdog;
        net::steady_timer poll(ctx);
        std::function<void()> check = [&] {
            if (done()) {
                ok = true;
                ctx.stop();
                return;
            }
            if (std::chrono::steady_clock::now() >= give_up) {
                ctx.stop();
                return;
            }
            poll.expires_after(50ms);
            poll.async_wait([&](const boost::system::error_code& ec) {
                if (!ec)
                    check();
            });
        };
        net::post(ctx, check);
        ctx.restart();
        ctx.run();
        return ok;
    }

    /// Runs the io_context for `d` (to see that nothing happens).
    void run_for(std::chrono::milliseconds d) {
        const auto until = std::chrono::steady_clock::now() + d;
        (void)run_until([&] { return std::chrono::steady_clock::now() >= until; });
    }

    std::string text() const {
        ex::exposition page;
        prober->render(page);
        return page.text();
    }
    exposition_page scrape() const { return parse_exposition(text()); }
};

double value(const exposition_page& p, const char* name, const ex::target_spec& s) {
    return p.value(name, labels_of(s));
}

double icmp_errors(const exposition_page& p, const ex::target_spec& s) {
    double n = 0;
    for (const auto* e : p.find("icmpengine_exporter_icmp_errors_total", labels_of(s)))
        n += e->value;
    return n;
}

/// requests == replies in time + timeouts + ICMP errors + send errors +
/// in flight, and the histogram's buckets are cumulative, end in +Inf ==
/// _count, with the configured bounds.
void check_target(const exposition_page& p, const ex::target_spec& s) {
    INFO("target " << s.host);
    const auto l = labels_of(s);
    const double requests = p.value("smokeping_requests_total", l);
    const double count = p.value("smokeping_response_duration_seconds_count", l);
    CHECK(requests == count + p.value("icmpengine_exporter_timeouts_total", l) + icmp_errors(p, s) +
                          p.value("smokeping_send_errors_total", l) +
                          p.value("icmpengine_exporter_in_flight", l));
    const auto buckets = p.find("smokeping_response_duration_seconds_bucket", l);
    REQUIRE(buckets.size() == default_buckets.size() + 1);
    double previous = 0;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        const double le = std::strtod(buckets[i]->labels.at("le").c_str(), nullptr);
        CHECK(le == (i < default_buckets.size() ? default_buckets[i] : HUGE_VAL));
        CHECK(buckets[i]->value >= previous);
        previous = buckets[i]->value;
    }
    CHECK(previous == count);
    CHECK(p.value("smokeping_response_duration_seconds_sum", l) >= 0);
}

/// Every series a target has from its first scrape, all zero.
void check_zero_series(const exposition_page& p, const ex::target_spec& s) {
    INFO("target " << s.host);
    const auto l = labels_of(s);
    for (const char* name :
         {"smokeping_requests_total", "smokeping_response_duration_seconds_count",
          "smokeping_response_duration_seconds_sum", "smokeping_response_duplicates_total",
          "smokeping_response_ttl", "smokeping_send_errors_total",
          "icmpengine_exporter_timeouts_total", "icmpengine_exporter_late_replies_total",
          "icmpengine_exporter_in_flight"})
        CHECK(p.value(name, l) == 0);
    CHECK(p.find("smokeping_response_duration_seconds_bucket", l).size() ==
          default_buckets.size() + 1);
    CHECK(p.find("icmpengine_exporter_icmp_errors_total", l).empty());
}

} // namespace

TEST_CASE("every series from the first scrape; loopback answered, counts balance", "[continuous]") {
    harness h(options(30s));
    const std::vector<ex::target_spec> targets = {spec("127.0.0.1", 50ms), spec("127.1.0.2", 50ms),
                                                  spec("::1", 50ms)};
    h.prober->set_targets(targets);
    CHECK(h.prober->size() == targets.size());

    const std::string first = h.text();
    const exposition_page p0 = parse_exposition(first);
    for (const auto& t : targets)
        check_zero_series(p0, t);
    CHECK(p0.value("smokeping_receive_errors_total") == 0);
    CHECK(p0.value("icmpengine_exporter_targets") == 3);
    CHECK(p0.value("icmpengine_exporter_engine_sent_total", {{"source", ""}, {"tos", "0"}}) == 0);
    CHECK(p0.types.at("smokeping_response_duration_seconds") == "histogram");
    CHECK(p0.types.at("smokeping_requests_total") == "counter");
    CHECK(p0.types.at("smokeping_response_ttl") == "gauge");
    CHECK(p0.helps.at("smokeping_requests_total") == "Number of ping requests sent");
    check_with_promtool(first);

    REQUIRE(h.run_until([&] {
        const exposition_page p = h.scrape();
        return std::all_of(targets.begin(), targets.end(), [&](const ex::target_spec& t) {
            return value(p, "smokeping_response_duration_seconds_count", t) >= 5;
        });
    }));
    const std::string text = h.text();
    const exposition_page p = parse_exposition(text);
    double sent = 0;
    for (const auto& t : targets) {
        check_target(p, t);
        CHECK(value(p, "smokeping_response_ttl", t) == 64); // Linux's default TTL / hop limit
        CHECK(value(p, "icmpengine_exporter_timeouts_total", t) == 0); // timeout 30 s
        sent += value(p, "smokeping_requests_total", t);
    }
    CHECK(p.value("icmpengine_exporter_engine_sent_total", {{"source", ""}, {"tos", "0"}}) == sent);
    check_with_promtool(text);

    std::size_t visited = 0;
    h.prober->visit([&](const ex::target_view& v) {
        REQUIRE(v.spec != nullptr);
        CHECK(v.spec->host == targets[visited].host);
        CHECK(v.sent == value(p, "smokeping_requests_total", targets[visited]));
        CHECK(v.received == value(p, "smokeping_response_duration_seconds_count", *v.spec));
        REQUIRE(v.history != nullptr);
        CHECK(v.history->capacity() == 60);
        ++visited;
    });
    CHECK(visited == targets.size());
}

TEST_CASE("a silent target: requests and timeouts rise, the histogram stays empty",
          "[continuous]") {
    harness h(options()); // timeout = the interval
    const ex::target_spec silent = spec(silent_target().to_string(), 50ms);
    h.prober->set_targets({silent});
    REQUIRE(h.run_until(
        [&] { return value(h.scrape(), "icmpengine_exporter_timeouts_total", silent) >= 5; }));
    const exposition_page p = h.scrape();
    check_target(p, silent);
    CHECK(value(p, "smokeping_requests_total", silent) >= 5);
    CHECK(value(p, "smokeping_response_duration_seconds_count", silent) == 0);
    CHECK(value(p, "smokeping_response_ttl", silent) == 0);
}

TEST_CASE("late replies, duplicates and ICMP errors through the simulator", "[continuous]") {
    using icmpengine::testing::network_simulator;
    // .1 answers after 300 ms (the timeout is the 100 ms interval), .2
    // answers twice, .3 with a host unreachable.
    network_simulator sim(icmpengine::testing::simulated(
        "198.18.0.1:delay=300ms;198.18.0.2:dup=1;198.18.0.3:error=unreach:1",
        "continuous: late, duplicates, errors"));
    harness h(options());
    const ex::target_spec late = spec("198.18.0.1"), dup = spec("198.18.0.2"),
                          unreachable = spec("198.18.0.3");
    h.prober->set_targets({late, dup, unreachable});
    REQUIRE(h.run_until([&] {
        const exposition_page p = h.scrape();
        return value(p, "icmpengine_exporter_late_replies_total", late) >= 3 &&
               value(p, "smokeping_response_duplicates_total", dup) >= 3 &&
               icmp_errors(p, unreachable) >= 3;
    }));
    const std::string text = h.text();
    const exposition_page p = parse_exposition(text);
    for (const auto& t : {late, dup, unreachable})
        check_target(p, t);
    // Late: counted apart, never observed in the histogram.
    CHECK(value(p, "smokeping_response_duration_seconds_count", late) == 0);
    CHECK(value(p, "icmpengine_exporter_timeouts_total", late) >=
          value(p, "icmpengine_exporter_late_replies_total", late));
    // Duplicates: the first reply is observed, the copy counted.
    CHECK(value(p, "smokeping_response_duration_seconds_count", dup) >=
          value(p, "smokeping_response_duplicates_total", dup) - 1);
    CHECK(value(p, "smokeping_response_ttl", dup) == 64);
    // ICMP errors: by type, only the types seen.
    const auto errors = p.find("icmpengine_exporter_icmp_errors_total", labels_of(unreachable));
    REQUIRE(errors.size() == 1);
    CHECK(errors.front()->labels.at("type") == "unreachable");
    CHECK(value(p, "smokeping_response_duration_seconds_count", unreachable) == 0);
    CHECK(p.find("icmpengine_exporter_icmp_errors_total", labels_of(dup)).empty());
    check_with_promtool(text);
}

TEST_CASE("reload keeps the counters of unchanged targets and drops removed ones", "[continuous]") {
    harness h(options(30s));
    ex::target_spec a = spec("127.0.0.1", 50ms);
    const ex::target_spec b = spec("127.0.0.2", 50ms);
    ex::target_spec other_tos = spec("127.0.0.4", 50ms);
    other_tos.tos = 32; // a second engine
    h.prober->set_targets({a, b, other_tos});
    REQUIRE(h.run_until([&] {
        const exposition_page p = h.scrape();
        return value(p, "smokeping_response_duration_seconds_count", a) >= 3 &&
               value(p, "smokeping_response_duration_seconds_count", b) >= 3 &&
               value(p, "smokeping_response_duration_seconds_count", other_tos) >= 3;
    }));
    const exposition_page before = h.scrape();
    const double a_requests = value(before, "smokeping_requests_total", a);
    const double a_count = value(before, "smokeping_response_duration_seconds_count", a);
    CHECK(before.find("icmpengine_exporter_engine_sent_total", {{"tos", "32"}}).size() == 1);

    a.interval = 30ms; // same identity: kept
    const ex::target_spec c = spec("127.0.0.3", 50ms);
    h.prober->set_targets({c, a});
    const exposition_page after = h.scrape();
    CHECK(value(after, "smokeping_requests_total", a) == a_requests);
    CHECK(value(after, "smokeping_response_duration_seconds_count", a) == a_count);
    check_zero_series(after, c);
    CHECK(after.find("smokeping_requests_total", labels_of(b)).empty());
    CHECK(after.find("smokeping_requests_total", labels_of(other_tos)).empty());
    CHECK(after.find("icmpengine_exporter_engine_sent_total", {{"tos", "32"}}).empty());
    CHECK(after.value("icmpengine_exporter_targets") == 2);

    REQUIRE(h.run_until([&] {
        const exposition_page p = h.scrape();
        return value(p, "smokeping_response_duration_seconds_count", c) >= 3 &&
               value(p, "smokeping_requests_total", a) >= a_requests + 3;
    }));
    const exposition_page p = h.scrape();
    check_target(p, a);
    check_target(p, c);
    CHECK(p.find("smokeping_requests_total").size() == 2);
    std::vector<std::string> order;
    h.prober->visit([&](const ex::target_view& v) { order.push_back(v.spec->host); });
    CHECK(order == std::vector<std::string>{"127.0.0.3", "127.0.0.1"});

    h.prober->set_targets({});
    CHECK(h.prober->size() == 0);
    CHECK(h.scrape().find("smokeping_requests_total").empty());
    h.run_for(100ms); // the retired engine is destroyed from its own handler
}

TEST_CASE("each target is pinged on its interval, never faster", "[continuous]") {
    harness h(options(30s));
    constexpr auto interval = 40ms;
    std::vector<ex::target_spec> targets;
    for (std::uint32_t i = 0; i < 5; ++i)
        targets.push_back(spec(icmpengine::testing::loopback_v4(i).to_string(), interval));
    std::vector<std::vector<std::chrono::steady_clock::time_point>> sends(targets.size());
    h.prober->set_send_observer([&](std::size_t i, std::chrono::steady_clock::time_point when) {
        sends.at(i).push_back(when);
    });
    h.prober->set_targets(targets);
    REQUIRE(h.run_until([&] {
        return std::all_of(sends.begin(), sends.end(), [](const auto& s) { return s.size() >= 8; });
    }));
    for (std::size_t i = 0; i < sends.size(); ++i) {
        INFO("target " << i);
        for (std::size_t k = 1; k < sends[i].size(); ++k)
            CHECK(sends[i][k] - sends[i][k - 1] >= interval - 1ms);
    }
    const exposition_page p = h.scrape();
    for (std::size_t i = 0; i < targets.size(); ++i)
        CHECK(value(p, "smokeping_requests_total", targets[i]) == sends[i].size());
}

TEST_CASE("stop(): no sends after it, pings in flight end cancelled", "[continuous]") {
    harness h(options(30s)); // nothing times out during the test
    const ex::target_spec silent = spec(silent_target().to_string(), 20ms);
    std::size_t sends = 0;
    h.prober->set_send_observer([&](std::size_t, auto) { ++sends; });
    h.prober->set_targets({silent});
    REQUIRE(h.run_until([&] { return sends >= 3; }));
    h.prober->stop();
    const std::size_t sent = sends;
    const exposition_page p = h.scrape();
    CHECK(value(p, "icmpengine_exporter_in_flight", silent) == 0);
    CHECK(value(p, "icmpengine_exporter_timeouts_total", silent) == 0);
    CHECK(value(p, "smokeping_requests_total", silent) == sent);
    CHECK(p.value("icmpengine_exporter_engine_cancelled_total") == sent);
    h.run_for(200ms);
    CHECK(sends == sent);
    CHECK(value(h.scrape(), "smokeping_requests_total", silent) == sent);
}

TEST_CASE("labels, tos and source: series and engines", "[continuous]") {
    harness h(options(30s));
    ex::target_spec t = spec("127.0.0.1", 50ms);
    t.host = "localhost \"quoted\"";
    t.source = "127.0.0.1";
    t.tos = 0xb8; // EF; DSCP 46
    t.labels = {{"path", "a\\b"}, {"zone", "eu\nwest"}};
    ex::target_spec plain = spec("127.0.0.5", 50ms);
    h.prober->set_targets({t, plain});
    REQUIRE(h.run_until(
        [&] { return value(h.scrape(), "smokeping_response_duration_seconds_count", t) >= 2; }));
    const std::string text = h.text();
    const exposition_page p = parse_exposition(text);
    check_target(p, t);
    check_target(p, plain);
    CHECK(text.find("tos=\"184\",path=\"a\\\\b\",zone=\"eu\\nwest\"}") != std::string::npos);
    CHECK(p.find("icmpengine_exporter_engine_sent_total").size() == 2);
    CHECK(p.value("icmpengine_exporter_engine_sent_total",
                  {{"source", "127.0.0.1"}, {"tos", "184"}}) ==
          value(p, "smokeping_requests_total", t));
    check_with_promtool(text);
}

TEST_CASE("set_targets refuses a bad target and changes nothing", "[continuous]") {
    harness h(options());
    h.prober->set_targets({spec("127.0.0.1")});
    ex::target_spec bad_source = spec("127.0.0.2");
    bad_source.source = "not-an-address";
    CHECK_THROWS_AS(h.prober->set_targets({bad_source}), std::invalid_argument);
    ex::target_spec bad_interval = spec("127.0.0.2", 0ns);
    CHECK_THROWS_AS(h.prober->set_targets({bad_interval}), std::invalid_argument);
    ex::target_spec too_big = spec("127.0.0.2");
    too_big.size = 70000;
    CHECK_THROWS_AS(h.prober->set_targets({too_big}), std::invalid_argument);
    CHECK(h.prober->size() == 1);
    CHECK(h.scrape().find("smokeping_requests_total").size() == 1);
}

TEST_CASE("no history ring when history_bins is 0", "[continuous]") {
    ex::continuous_options o = options();
    o.history_bins = 0;
    harness h(o);
    h.prober->set_targets({spec("127.0.0.1"), spec("127.0.0.1")}); // the same twice: kept once
    CHECK(h.prober->size() == 1);
    h.prober->visit([](const ex::target_view& v) { CHECK(v.history == nullptr); });
}

TEST_CASE("an engine retired and never run again goes with the io_context", "[continuous]") {
    harness h(options(30s));
    ex::target_spec a = spec("127.0.0.1", 20ms);
    ex::target_spec b = spec("127.0.0.2", 20ms);
    b.tos = 64; // its own engine
    h.prober->set_targets({a, b});
    REQUIRE(h.run_until([&] {
        const exposition_page p = h.scrape();
        return value(p, "smokeping_requests_total", a) >= 2 &&
               value(p, "smokeping_requests_total", b) >= 2;
    }));
    h.prober->set_targets({a}); // b's engine: retired, its destruction posted
    h.prober.reset();           // the prober goes first, the io_context never runs again
    SUCCEED("destroyed without running the posted handler");
}
