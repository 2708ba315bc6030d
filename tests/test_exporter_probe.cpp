// SPDX-License-Identifier: MIT
// Probe mode's pure logic (tools/exporter/probe.hpp): the /probe query,
// the allow-list and the page, which `promtool check metrics` must find
// clean. No network: the pings are tests/test_exporter_probe_run.cpp.
#include <catch2/catch.hpp>

#include "probe.hpp"
#include "promtool_check.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using icmpengine::ip_address;
using icmpengine_exporter::allow_list;
using icmpengine_exporter::exposition;
using icmpengine_exporter::network_kind;
using icmpengine_exporter::parse_probe_query;
using icmpengine_exporter::probe_limits;
using icmpengine_exporter::probe_request;
using icmpengine_exporter::probe_result;

using icmpengine::testing::promtool_problems;

namespace {

probe_request parsed(std::string_view query, std::string_view header = {},
                     const probe_limits& limits = {}) {
    auto r = parse_probe_query(query, header, limits);
    if (const auto* reason = std::get_if<std::string>(&r))
        FAIL("unexpected 400 for '" << query << "': " << *reason);
    return std::get<probe_request>(r);
}

std::string refused(std::string_view query, std::string_view header = {},
                    const probe_limits& limits = {}) {
    auto r = parse_probe_query(query, header, limits);
    if (std::holds_alternative<probe_request>(r))
        FAIL("expected a 400 for '" << query << "'");
    return std::get<std::string>(r);
}

allow_list allow(std::string_view text) {
    std::string error;
    auto list = allow_list::parse(text, error);
    if (!list)
        FAIL("'" << text << "' refused: " << error);
    return *list;
}

std::string allow_error(std::string_view text) {
    std::string error;
    CHECK_FALSE(allow_list::parse(text, error).has_value());
    return error;
}

} // namespace

TEST_CASE("query: defaults, and every parameter read", "[probe][query]") {
    const probe_request d = parsed("target=127.0.0.1");
    CHECK(d.target == "127.0.0.1");
    CHECK(d.count == 1);
    CHECK(d.interval == 1s);
    CHECK(d.timeout == 5s); // probe_limits::default_timeout
    CHECK(d.size == 56);
    CHECK(d.ttl == 0);
    CHECK(d.ip_protocol == network_kind::ip);

    const probe_request r =
        parsed("module=icmp&target=example.net&count=5&interval=200ms&timeout=3s&size=0&ttl=255&"
               "ip_protocol=ip6&debug=true");
    CHECK(r.target == "example.net");
    CHECK(r.count == 5);
    CHECK(r.interval == 200ms);
    CHECK(r.timeout == 3s);
    CHECK(r.size == 0);
    CHECK(r.ttl == 255);
    CHECK(r.ip_protocol == network_kind::ip6);

    CHECK(parsed("target=::1&count=100&interval=10ms&size=65507&ttl=1").size == 65507);
    CHECK(parsed("target=::1&ip_protocol=ip4").ip_protocol == network_kind::ip4);
    CHECK(parsed("target=::1&ip_protocol=ip").ip_protocol == network_kind::ip);
    CHECK(parsed("target=::1&preferred_ip_protocol=ip4").ip_protocol == network_kind::ip4);
}

TEST_CASE("query: durations as Go writes them, timeout also in seconds", "[probe][query]") {
    CHECK(parsed("target=::1&interval=1m30s&timeout=2m").interval == 90s);
    CHECK(parsed("target=::1&interval=1.5s").interval == 1500ms);
    CHECK(parsed("target=::1&interval=10000us").interval == 10ms);
    CHECK(parsed("target=::1&interval=10000%C2%B5s").interval == 10ms); // U+00B5
    CHECK(parsed("target=::1&interval=.5h&timeout=120").interval == 30min);
    CHECK(parsed("target=::1&timeout=2.5").timeout == 2500ms);
    CHECK(parsed("target=::1&timeout=7").timeout == 7s);
    CHECK(parsed("target=::1&timeout=250ms").timeout == 250ms);
    CHECK(parsed("target=::1&timeout=1h", {}, {.max_timeout = 2h}).timeout == 1h);
}

TEST_CASE("query: the timeout from Prometheus's scrape-timeout header", "[probe][query]") {
    CHECK(parsed("target=::1", "10").timeout == 9500ms); // blackbox's 0.5 s offset
    CHECK(parsed("target=::1", "2.25").timeout == 1750ms);
    CHECK(parsed("target=::1", "0.3").timeout == 300ms);        // shorter than the offset
    CHECK(parsed("target=::1", "0").timeout == 5s);             // 0 says nothing (blackbox)
    CHECK(parsed("target=::1", "1000").timeout == 120s);        // max_timeout
    CHECK(parsed("target=::1&timeout=1s", "10").timeout == 1s); // the query's wins
    CHECK(refused("target=::1", "ten") ==
          "X-Prometheus-Scrape-Timeout-Seconds: 'ten' is not a number of seconds");
    CHECK(refused("target=::1", "-1") ==
          "X-Prometheus-Scrape-Timeout-Seconds: '-1' is not a number of seconds");
}

TEST_CASE("query: each bad value is a 400 naming the parameter and value", "[probe][query]") {
    CHECK(refused("") == "target: missing (/probe?target=ADDRESS-OR-NAME)");
    CHECK(refused("target=") == "target: missing (/probe?target=ADDRESS-OR-NAME)");
    CHECK(refused("count=2") == "target: missing (/probe?target=ADDRESS-OR-NAME)");
    CHECK(refused("target=a+b") == "target: 'a b' is not an address or a host name");
    CHECK(refused("target=a%0Ab%7F") == "target: 'a\\x0ab\\x7f' is not an address or a host name");
    CHECK(refused("target=" + std::string(300, '-')) ==
          "target: '" + std::string(100, '-') + "...' is not an address or a host name");
    CHECK(refused("target=http://x/") == "target: 'http://x/' is not an address or a host name");
    CHECK(refused("target=[::1") == "target: '[::1' is not an address or a host name");
    CHECK(refused("target=[127.0.0.1]") ==
          "target: '[127.0.0.1]' is not an address or a host name");
    CHECK(refused("target=1.2.3.4:65536") ==
          "target: '1.2.3.4:65536' is not an address or a host name");
    CHECK(refused("target=::1::2") == "target: '::1::2' is not an address or a host name");
    CHECK(refused("target=a..b") == "target: 'a..b' is not an address or a host name");
    CHECK(refused("target=::1&count=0") == "count: '0' is not in 1..100");
    CHECK(refused("target=::1&count=101") == "count: '101' is not in 1..100");
    CHECK(refused("target=::1&count=-1") == "count: '-1' is not in 1..100");
    CHECK(refused("target=::1&count=") == "count: '' is not in 1..100");
    CHECK(refused("target=::1&count=99999999999999999999") ==
          "count: '99999999999999999999' is not in 1..100");
    CHECK(refused("target=::1&count=3", {}, {.max_count = 2}) == "count: '3' is not in 1..2");
    CHECK(refused("target=::1&interval=1") == "interval: '1' is not a duration (1s, 200ms, ...)");
    CHECK(refused("target=::1&interval=1x") == "interval: '1x' is not a duration (1s, 200ms, ...)");
    CHECK(refused("target=::1&interval=9ms") == "interval: '9ms' is below the minimum 10ms");
    CHECK(refused("target=::1&interval=-1s") == "interval: '-1s' is below the minimum 10ms");
    CHECK(refused("target=::1&timeout=0") == "timeout: '0' is not positive");
    CHECK(refused("target=::1&timeout=-2s") == "timeout: '-2s' is not positive");
    CHECK(refused("target=::1&timeout=2.5.1") ==
          "timeout: '2.5.1' is not a duration (2s, 500ms) or a number of seconds");
    CHECK(refused("target=::1&timeout=121s") == "timeout: '121s' is above the maximum 120s");
    CHECK(refused("target=::1&size=65508") == "size: '65508' is not in 0..65507");
    CHECK(refused("target=::1&ttl=0") == "ttl: '0' is not in 1..255");
    CHECK(refused("target=::1&ttl=256") == "ttl: '256' is not in 1..255");
    CHECK(refused("target=::1&ip_protocol=ip5") == "ip_protocol: 'ip5' is not ip4, ip6 or ip");
    CHECK(refused("target=::1&preferred_ip_protocol=tcp") ==
          "preferred_ip_protocol: 'tcp' is not ip4, ip6 or ip");
}

TEST_CASE("query: the pings must fit in the timeout", "[probe][query]") {
    CHECK(refused("target=::1&count=5&interval=1s&timeout=4s") ==
          "timeout: 5 pings 1s apart do not fit in 4s: (count - 1) * interval must be below the "
          "timeout");
    CHECK(parsed("target=::1&count=5&interval=1s&timeout=4001ms").timeout == 4001ms);
    CHECK(refused("target=::1&count=11&interval=500ms", "5.5") ==
          "timeout: 11 pings 500ms apart do not fit in 5s (the scrape timeout less 0.5s, or the "
          "default): (count - 1) * interval must be below the timeout");
    CHECK(parsed("target=::1&count=100&interval=10ms&timeout=1s").count == 100);
}

TEST_CASE("query: percent-decoding, duplicates, and the target's forms", "[probe][query]") {
    CHECK(parsed("target=%3A%3a1").target == "::1");
    CHECK(parsed("%74arget=127.0.0.1").target == "127.0.0.1"); // names are decoded too
    CHECK(parsed("target=%5B2001%3Adb8%3A%3A1%5D").target == "2001:db8::1");
    CHECK(parsed("target=[::1]:9100").target == "::1");
    CHECK(parsed("target=127.0.0.1:80").target == "127.0.0.1");
    CHECK(parsed("target=node-1.example.org:9100").target == "node-1.example.org");
    CHECK(parsed("target=example.org.").target == "example.org.");
    CHECK(parsed("target=localhost&&count=2&").count == 2);
    CHECK(refused("target=%zz") == "query: 'target=%zz' is not valid percent-encoding");
    CHECK(refused("target=%4") == "query: 'target=%4' is not valid percent-encoding");
    CHECK(refused("target=::1&target=127.0.0.1") == "target: given twice");
    CHECK(refused("target=::1&count=1&count=1") == "count: given twice");
    CHECK(refused("target=::1&ip_protocol=ip4&preferred_ip_protocol=ip4") ==
          "ip_protocol: given twice (also as preferred_ip_protocol)");
    CHECK(parsed("target=::1&module=a&module=b").target == "::1"); // not ours: ignored
}

TEST_CASE("allow-list: the default is loopback", "[probe][allow]") {
    const allow_list d;
    CHECK(d.to_string() == "127.0.0.0/8,::1/128");
    CHECK(d.allows(ip_address::parse("127.0.0.1")));
    CHECK(d.allows(ip_address::parse("127.255.255.255")));
    CHECK(d.allows(ip_address::parse("::1")));
    CHECK(d.allows(ip_address::parse("::ffff:127.0.0.1"))); // mapped: checked as IPv4
    CHECK_FALSE(d.allows(ip_address::parse("128.0.0.0")));
    CHECK_FALSE(d.allows(ip_address::parse("126.255.255.255")));
    CHECK_FALSE(d.allows(ip_address::parse("::2")));
    CHECK_FALSE(d.allows(ip_address::parse("::")));
    CHECK_FALSE(d.allows(ip_address::parse("::ffff:10.0.0.1")));
    CHECK_FALSE(d.allows(ip_address::parse("::127.0.0.1"))); // compatible, not mapped
}

TEST_CASE("allow-list: prefixes, bare addresses, edges", "[probe][allow]") {
    const allow_list l = allow(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,fe80::1");
    CHECK(l.to_string() == "10.0.0.0/8,192.0.2.7/32,2001:db8::/32,fe80::1/128");
    CHECK(l.allows(ip_address::parse("10.0.0.0")));
    CHECK(l.allows(ip_address::parse("10.255.255.255")));
    CHECK_FALSE(l.allows(ip_address::parse("11.0.0.0")));
    CHECK_FALSE(l.allows(ip_address::parse("9.255.255.255")));
    CHECK(l.allows(ip_address::parse("192.0.2.7")));
    CHECK_FALSE(l.allows(ip_address::parse("192.0.2.6")));
    CHECK_FALSE(l.allows(ip_address::parse("192.0.2.8")));
    CHECK(l.allows(ip_address::parse("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
    CHECK_FALSE(l.allows(ip_address::parse("2001:db9::")));
    CHECK_FALSE(l.allows(ip_address::parse("2001:db7:ffff::")));
    CHECK(l.allows(ip_address::parse("fe80::1")));
    CHECK_FALSE(l.allows(ip_address::parse("fe80::2")));
    CHECK_FALSE(l.allows(ip_address::parse("127.0.0.1"))); // the default is replaced
    CHECK(l.allows(ip_address::parse("::ffff:10.1.2.3")));

    const allow_list v4_all = allow("0.0.0.0/0");
    CHECK(v4_all.allows(ip_address::parse("255.255.255.255")));
    CHECK(v4_all.allows(ip_address::parse("::ffff:1.2.3.4")));
    CHECK_FALSE(v4_all.allows(ip_address::parse("::1"))); // /0 of one family only
    const allow_list v6_all = allow("::/0");
    CHECK(v6_all.allows(ip_address::parse("2001:db8::1")));
    CHECK_FALSE(v6_all.allows(ip_address::parse("1.2.3.4")));

    const allow_list odd = allow("10.1.2.3/8,::ffff:192.168.0.0/112,2001:db8::1/127,1.2.3.5/31");
    CHECK(odd.to_string() == "10.0.0.0/8,192.168.0.0/16,2001:db8::/127,1.2.3.4/31");
    CHECK(odd.allows(ip_address::parse("192.168.200.1")));
    CHECK(odd.allows(ip_address::parse("2001:db8::")));
    CHECK_FALSE(odd.allows(ip_address::parse("2001:db8::2")));
    CHECK(odd.allows(ip_address::parse("1.2.3.4")));
    CHECK_FALSE(odd.allows(ip_address::parse("1.2.3.6")));

    CHECK(allow("").to_string().empty());
    CHECK_FALSE(allow("").allows(ip_address::parse("127.0.0.1")));
}

TEST_CASE("allow-list: errors name the entry", "[probe][allow]") {
    CHECK(allow_error("10.0.0.0/33") == "--probe.allow: '10.0.0.0/33' is not a prefix");
    CHECK(allow_error("::/129") == "--probe.allow: '::/129' is not a prefix");
    CHECK(allow_error("127.0.0.1,example.com") == "--probe.allow: 'example.com' is not a prefix");
    CHECK(allow_error("10.0.0.0/") == "--probe.allow: '10.0.0.0/' is not a prefix");
    CHECK(allow_error("10.0.0.0/-1") == "--probe.allow: '10.0.0.0/-1' is not a prefix");
    CHECK(allow_error("10.0.0.0/8,") == "--probe.allow: '' is not a prefix");
    CHECK(allow_error("10.0.0/8") == "--probe.allow: '10.0.0/8' is not a prefix");
}

namespace {

probe_result sample_result() {
    probe_result r;
    r.address = ip_address::parse("127.0.0.1");
    r.resolve_time = 0ns;
    r.sent = 5;
    r.received = 4;
    r.rtts = {1ms, 3ms, 2ms, 4ms};
    r.reply_ttl = 64;
    r.icmp_errors = 1;
    r.duration = 12500us;
    return r;
}

} // namespace

TEST_CASE("render: blackbox's metrics and ours, exactly", "[probe][render]") {
    probe_request request;
    request.target = "127.0.0.1";
    request.count = 5;
    exposition page;
    icmpengine_exporter::render_probe(request, sample_result(), page);
    const std::string text = page.text();
    CHECK(text ==
          "# HELP icmpengine_probe_icmp_errors ICMP errors (unreachable, time exceeded, ...) that "
          "answered the probe's pings\n"
          "# TYPE icmpengine_probe_icmp_errors gauge\n"
          "icmpengine_probe_icmp_errors 1\n"
          "# HELP icmpengine_probe_packet_loss_ratio Fraction of the probe's echo requests that "
          "got no reply (1 if none was sent)\n"
          "# TYPE icmpengine_probe_packet_loss_ratio gauge\n"
          "icmpengine_probe_packet_loss_ratio 0.2\n"
          "# HELP icmpengine_probe_packets_received Echo replies the probe received\n"
          "# TYPE icmpengine_probe_packets_received gauge\n"
          "icmpengine_probe_packets_received 4\n"
          "# HELP icmpengine_probe_packets_sent Echo requests the probe sent\n"
          "# TYPE icmpengine_probe_packets_sent gauge\n"
          "icmpengine_probe_packets_sent 5\n"
          "# HELP icmpengine_probe_rtt_seconds Round-trip times of the probe's replies: min, avg, "
          "max, median and standard deviation\n"
          "# TYPE icmpengine_probe_rtt_seconds gauge\n"
          "icmpengine_probe_rtt_seconds{stat=\"avg\"} 0.0025\n"
          "icmpengine_probe_rtt_seconds{stat=\"max\"} 0.004\n"
          "icmpengine_probe_rtt_seconds{stat=\"median\"} 0.0025\n"
          "icmpengine_probe_rtt_seconds{stat=\"min\"} 0.001\n"
          "icmpengine_probe_rtt_seconds{stat=\"stddev\"} 0.001118033988749895\n"
          "# HELP icmpengine_probe_send_errors Echo requests the probe could not send\n"
          "# TYPE icmpengine_probe_send_errors gauge\n"
          "icmpengine_probe_send_errors 0\n"
          "# HELP probe_dns_lookup_time_seconds Returns the time taken for probe dns lookup in "
          "seconds\n"
          "# TYPE probe_dns_lookup_time_seconds gauge\n"
          "probe_dns_lookup_time_seconds 0\n"
          "# HELP probe_duration_seconds Returns how long the probe took to complete in seconds\n"
          "# TYPE probe_duration_seconds gauge\n"
          "probe_duration_seconds 0.0125\n"
          "# HELP probe_icmp_duration_seconds Duration of icmp request by phase\n"
          "# TYPE probe_icmp_duration_seconds gauge\n"
          "probe_icmp_duration_seconds{phase=\"resolve\"} 0\n"
          "probe_icmp_duration_seconds{phase=\"rtt\"} 0.001\n"
          "probe_icmp_duration_seconds{phase=\"setup\"} 0\n"
          "# HELP probe_icmp_reply_hop_limit Replied packet hop limit (TTL for ipv4)\n"
          "# TYPE probe_icmp_reply_hop_limit gauge\n"
          "probe_icmp_reply_hop_limit 64\n"
          "# HELP probe_ip_addr_hash Specifies the hash of IP address. It's useful to detect if "
          "the IP address changes.\n"
          "# TYPE probe_ip_addr_hash gauge\n"
          "probe_ip_addr_hash 99635399\n"
          "# HELP probe_ip_protocol Specifies whether probe ip protocol is IP4 or IP6\n"
          "# TYPE probe_ip_protocol gauge\n"
          "probe_ip_protocol 4\n"
          "# HELP probe_success Displays whether or not the probe was a success\n"
          "# TYPE probe_success gauge\n"
          "probe_success 1\n");
    CHECK(promtool_problems(text).empty());
}

TEST_CASE("render: the address hash is Go's, the protocol the address's", "[probe][render]") {
    probe_request request;
    probe_result r = sample_result();
    const auto line_of = [](const std::string& text, std::string_view name) {
        const std::size_t at = text.find("\n" + std::string(name) + " ");
        REQUIRE(at != std::string::npos);
        return text.substr(at + 1, text.find('\n', at + 1) - at - 1);
    };
    request.target = "localhost"; // a name: Go's resolver gives IPv4 as 4 bytes
    exposition named;
    icmpengine_exporter::render_probe(request, r, named);
    CHECK(line_of(named.text(), "probe_ip_addr_hash") == "probe_ip_addr_hash 3668918509");
    request.target = "::1";
    r.address = ip_address::parse("::1");
    exposition v6;
    icmpengine_exporter::render_probe(request, r, v6);
    CHECK(line_of(v6.text(), "probe_ip_addr_hash") == "probe_ip_addr_hash 1751717746");
    CHECK(line_of(v6.text(), "probe_ip_protocol") == "probe_ip_protocol 6");
}

TEST_CASE("render: no reply: success 0, loss 1, no RTT statistics", "[probe][render]") {
    probe_request request;
    request.target = "198.18.99.1";
    probe_result r;
    r.address = ip_address::parse("198.18.99.1");
    r.sent = 3;
    r.duration = 2s;
    exposition page;
    icmpengine_exporter::render_probe(request, r, page);
    const std::string text = page.text();
    CHECK(text.find("\nprobe_success 0\n") != std::string::npos);
    CHECK(text.find("\nicmpengine_probe_packet_loss_ratio 1\n") != std::string::npos);
    CHECK(text.find("\nicmpengine_probe_packets_received 0\n") != std::string::npos);
    CHECK(text.find("probe_icmp_duration_seconds{phase=\"rtt\"} 0\n") != std::string::npos);
    CHECK(text.find("icmpengine_probe_rtt_seconds") == std::string::npos);
    CHECK(text.find("probe_icmp_reply_hop_limit") == std::string::npos);
    CHECK(text.find("NaN") == std::string::npos);
    CHECK(promtool_problems(text).empty());
}

TEST_CASE("render: a probe whose target did not resolve", "[probe][render]") {
    probe_request request;
    request.target = "nonexistent.invalid";
    exposition page;
    icmpengine_exporter::render_failed_probe(request, 250ms, page);
    const std::string text = page.text();
    CHECK(text == "# HELP probe_dns_lookup_time_seconds Returns the time taken for probe dns "
                  "lookup in seconds\n"
                  "# TYPE probe_dns_lookup_time_seconds gauge\n"
                  "probe_dns_lookup_time_seconds 0.25\n"
                  "# HELP probe_duration_seconds Returns how long the probe took to complete in "
                  "seconds\n"
                  "# TYPE probe_duration_seconds gauge\n"
                  "probe_duration_seconds 0.25\n"
                  "# HELP probe_icmp_duration_seconds Duration of icmp request by phase\n"
                  "# TYPE probe_icmp_duration_seconds gauge\n"
                  "probe_icmp_duration_seconds{phase=\"resolve\"} 0\n"
                  "probe_icmp_duration_seconds{phase=\"rtt\"} 0\n"
                  "probe_icmp_duration_seconds{phase=\"setup\"} 0\n"
                  "# HELP probe_ip_addr_hash Specifies the hash of IP address. It's useful to "
                  "detect if the IP address changes.\n"
                  "# TYPE probe_ip_addr_hash gauge\n"
                  "probe_ip_addr_hash 0\n"
                  "# HELP probe_ip_protocol Specifies whether probe ip protocol is IP4 or IP6\n"
                  "# TYPE probe_ip_protocol gauge\n"
                  "probe_ip_protocol 0\n"
                  "# HELP probe_success Displays whether or not the probe was a success\n"
                  "# TYPE probe_success gauge\n"
                  "probe_success 0\n");
    CHECK(promtool_problems(text).empty());
}
