// SPDX-License-Identifier: MIT
// Unit tests of continuous mode's metrics (tools/exporter/continuous_metrics.hpp):
// number and label formatting as client_golang writes them, the histogram's
// buckets, and whole pages read back by a strict reader. No network.
#include <catch2/catch.hpp>

#include "continuous_metrics.hpp"
#include "exposition_text.hpp"

#include <cmath>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace ex = icmpengine_exporter;

namespace {

std::string go_float(double v) {
    char buf[32];
    return std::string(buf, ex::write_go_float(buf, v));
}

ex::target_spec spec(const std::string& host) {
    ex::target_spec s;
    s.host = host;
    s.ip = icmpengine::ip_address::parse(host);
    return s;
}

} // namespace

TEST_CASE("floats as Go's strconv.FormatFloat(v, 'g', -1, 64)", "[continuous_metrics]") {
    CHECK(go_float(5e-05) == "5e-05");
    CHECK(go_float(0.0001) == "0.0001");
    CHECK(go_float(0.2048) == "0.2048");
    CHECK(go_float(26.2144) == "26.2144");
    CHECK(go_float(0) == "0");
    CHECK(go_float(1) == "1");
    CHECK(go_float(2.5) == "2.5");
    CHECK(go_float(123456) == "123456");
    CHECK(go_float(1234567) == "1.234567e+06");
    CHECK(go_float(1e21) == "1e+21");
    CHECK(go_float(0.1 + 0.2) == "0.30000000000000004");
    CHECK(go_float(-0.5) == "-0.5");
    CHECK(go_float(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(go_float(-std::numeric_limits<double>::infinity()) == "-Inf");
    CHECK(go_float(std::nan("")) == "NaN");
    CHECK(go_float(-1.2345678901234567e-308).size() <= 32);
}

TEST_CASE("label sets: smokeping_prober's names and order, then the group's, escaped",
          "[continuous_metrics]") {
    ex::target_spec s = spec("::1");
    s.host = "a \"host\"\\";
    s.source = "::1";
    s.tos = 184;
    s.labels = {{"site", "x\ny"}, {"zone", "eu"}};
    CHECK(ex::target_label_set(s) ==
          "{ip=\"::1\",host=\"a \\\"host\\\"\\\\\",source=\"::1\",tos=\"184\",site=\"x\\ny\","
          "zone=\"eu\"}");
    CHECK(ex::engine_label_set("", 0) == "{source=\"\",tos=\"0\"}");
}

TEST_CASE("buckets: ascending and finite; a last +Inf is implied", "[continuous_metrics]") {
    CHECK_THROWS_AS(ex::continuous_metrics({0.1, 0.1}), std::invalid_argument);
    CHECK_THROWS_AS(ex::continuous_metrics({0.2, 0.1}), std::invalid_argument);
    CHECK_THROWS_AS(ex::continuous_metrics({std::nan(""), 0.1}), std::invalid_argument);
    const ex::continuous_metrics m({0.1, std::numeric_limits<double>::infinity()});
    CHECK(m.bounds().size() == 1);
    CHECK_NOTHROW(ex::continuous_metrics({}));
}

TEST_CASE("a target's page, line for line", "[continuous_metrics]") {
    const ex::continuous_metrics m({0.0001, 0.001, 0.01});
    ex::target_metrics t = m.make_target(spec("127.0.0.1"));
    t.sent = 7;
    m.observe_reply(t, 100us, 64); // on the first bound: in that bucket
    m.observe_reply(t, 101us, 64); // the second
    m.observe_reply(t, 2s, 63);    // above every bound: +Inf only
    t.timeouts = 2;
    t.in_flight = 1;
    t.late_replies = 1;
    t.icmp_errors[static_cast<std::size_t>(ex::icmp_error_type::time_exceeded)] = 1;
    const ex::target_metrics* targets[] = {&t};
    ex::exposition page;
    m.render_targets(page, targets);
    const std::string l = "{ip=\"127.0.0.1\",host=\"127.0.0.1\",source=\"\",tos=\"0\"";
    const std::string text = page.text();
    CHECK(
        text ==
        "# HELP smokeping_requests_total Number of ping requests sent\n"
        "# TYPE smokeping_requests_total counter\n"
        "smokeping_requests_total" +
            l +
            "} 7\n"
            "# HELP smokeping_response_duration_seconds A histogram of latencies for ping "
            "responses.\n"
            "# TYPE smokeping_response_duration_seconds histogram\n"
            "smokeping_response_duration_seconds_bucket" +
            l +
            ",le=\"0.0001\"} 1\n"
            "smokeping_response_duration_seconds_bucket" +
            l +
            ",le=\"0.001\"} 2\n"
            "smokeping_response_duration_seconds_bucket" +
            l +
            ",le=\"0.01\"} 2\n"
            "smokeping_response_duration_seconds_bucket" +
            l +
            ",le=\"+Inf\"} 3\n"
            "smokeping_response_duration_seconds_sum" +
            l +
            "} 2.000201\n"
            "smokeping_response_duration_seconds_count" +
            l +
            "} 3\n"
            "# HELP smokeping_response_duplicates_total The number of duplicated response "
            "packets.\n"
            "# TYPE smokeping_response_duplicates_total counter\n"
            "smokeping_response_duplicates_total" +
            l +
            "} 0\n"
            "# HELP smokeping_response_ttl The last response Time To Live (TTL).\n"
            "# TYPE smokeping_response_ttl gauge\n"
            "smokeping_response_ttl" +
            l +
            "} 63\n"
            "# HELP smokeping_send_errors_total The number of errors when Pinger attempts to send "
            "packets.\n"
            "# TYPE smokeping_send_errors_total counter\n"
            "smokeping_send_errors_total" +
            l +
            "} 0\n"
            "# HELP icmpengine_exporter_timeouts_total Echo requests that got no reply within "
            "their timeout (the target's interval unless a timeout is set).\n"
            "# TYPE icmpengine_exporter_timeouts_total counter\n"
            "icmpengine_exporter_timeouts_total" +
            l +
            "} 2\n"
            "# HELP icmpengine_exporter_late_replies_total Echo replies that arrived after their "
            "request had timed out (not observed in smokeping_response_duration_seconds).\n"
            "# TYPE icmpengine_exporter_late_replies_total counter\n"
            "icmpengine_exporter_late_replies_total" +
            l +
            "} 1\n"
            "# HELP icmpengine_exporter_icmp_errors_total Echo requests answered by an ICMP error "
            "instead of a reply, by ICMP error type.\n"
            "# TYPE icmpengine_exporter_icmp_errors_total counter\n"
            "icmpengine_exporter_icmp_errors_total" +
            l +
            ",type=\"time_exceeded\"} 1\n"
            "# HELP icmpengine_exporter_in_flight Echo requests sent to the target that have not "
            "yet ended (reply, timeout or error).\n"
            "# TYPE icmpengine_exporter_in_flight gauge\n"
            "icmpengine_exporter_in_flight" +
            l + "} 1\n");
}

TEST_CASE("many targets and the prober's families read back strictly", "[continuous_metrics]") {
    const ex::continuous_metrics m({5e-05, 0.0001, 0.0002, 0.0004, 0.0008, 0.0016});
    std::vector<ex::target_metrics> targets;
    for (int i = 0; i < 50; ++i) {
        ex::target_spec s = spec("127.0.0." + std::to_string(i + 1));
        if (i % 2 == 0)
            s.labels = {{"group", "even"}};
        targets.push_back(m.make_target(s));
        for (int k = 0; k < i; ++k)
            m.observe_reply(targets.back(), std::chrono::microseconds(k * 37), 64);
        targets.back().sent = static_cast<std::uint64_t>(i);
    }
    std::vector<const ex::target_metrics*> order;
    for (const auto& t : targets)
        order.push_back(&t);
    ex::exposition page;
    m.render_targets(page, order);
    icmpengine::engine_stats stats;
    stats.sent = 12;
    stats.receive_overruns = 3;
    const std::string engine_labels = ex::engine_label_set("", 0);
    const ex::engine_metrics_row rows[] = {{engine_labels, stats}};
    ex::render_prober_metrics(page, rows, 3, targets.size());
    const auto p = icmpengine::testing::parse_exposition(page.text());
    CHECK(p.find("smokeping_requests_total").size() == 50);
    CHECK(p.find("smokeping_requests_total", {{"group", "even"}}).size() == 25);
    CHECK(p.find("smokeping_response_duration_seconds_bucket").size() == 50 * 7);
    CHECK(p.value("smokeping_receive_errors_total") == 3);
    CHECK(p.value("icmpengine_exporter_targets") == 50);
    CHECK(p.value("icmpengine_exporter_engine_sent_total") == 12);
    CHECK(p.value("icmpengine_exporter_engine_receive_overruns_total") == 3);
    for (int i = 0; i < 50; ++i) {
        const std::map<std::string, std::string> l{{"ip", "127.0.0." + std::to_string(i + 1)}};
        const auto buckets = p.find("smokeping_response_duration_seconds_bucket", l);
        REQUIRE(buckets.size() == 7);
        for (std::size_t b = 1; b < buckets.size(); ++b)
            CHECK(buckets[b]->value >= buckets[b - 1]->value);
        CHECK(buckets.back()->value == i);
        CHECK(p.value("smokeping_response_duration_seconds_count", l) == i);
    }
}

TEST_CASE("render_rows in batches of any size: render_targets' samples byte for byte",
          "[continuous_metrics]") {
    const ex::continuous_metrics m({0.0001, 0.001, 0.01});
    std::vector<ex::target_metrics> targets;
    for (int i = 0; i < 200; ++i) {
        ex::target_spec s = spec(i % 2 == 0 ? "127.0.0.1" : "::1");
        s.host = "h" + std::to_string(i);
        if (i % 3 == 0)
            s.labels = {{"group", "third"}};
        targets.push_back(m.make_target(s));
        ex::target_metrics& t = targets.back();
        for (int k = 0; k < i % 9; ++k)
            m.observe_reply(t, std::chrono::microseconds(k * 450), 64);
        t.sent = static_cast<std::uint64_t>(i * 3);
        t.timeouts = static_cast<std::uint64_t>(i % 4);
        if (i % 17 == 0)
            t.icmp_errors[static_cast<std::size_t>(ex::icmp_error_type::unreachable)] = 2;
    }
    std::vector<const ex::target_metrics*> order;
    for (const auto& t : targets)
        order.push_back(&t);
    ex::exposition page;
    m.render_targets(page, order);
    const std::string whole = page.text();

    const unsigned seed = std::random_device{}();
    INFO("seed " << seed);
    std::mt19937 random(seed);
    std::string streamed;
    REQUIRE(ex::continuous_metrics::family_count() == 9);
    for (std::size_t f = 0; f < ex::continuous_metrics::family_count(); ++f) {
        std::string rows;
        for (std::size_t first = 0; first < order.size();) {
            const std::size_t n = std::min<std::size_t>(1 + random() % 40, order.size() - first);
            m.render_rows(rows, f, std::span(order).subspan(first, n));
            first += n;
        }
        if (rows.empty())
            continue;
        const ex::family_info info = ex::continuous_metrics::family(f);
        ex::append_family_head(streamed, info.name, info.kind, info.help);
        streamed += rows;
    }
    CHECK(streamed == whole);
}
