// SPDX-License-Identifier: MIT
// The exporter's configuration (tools/exporter/config.hpp): smokeping_prober's
// YAML, Go durations, shards and expand() with a fake resolver.
#include <catch2/catch.hpp>

#include "config.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace icmpengine_exporter;

namespace {

struct failure {
    int line = -1;
    std::string what;
};

// The config_error parse_config throws for `yaml` (line -1 if none).
failure error_of(const std::string& yaml, const group_defaults& defaults = {}) {
    try {
        parse_config(yaml, "t.yml", defaults);
    } catch (const config_error& e) {
        CHECK(e.file() == "t.yml");
        return {e.line(), e.what()};
    }
    return {};
}

#define CHECK_ERROR(yaml, expected_line, text)                                                     \
    do {                                                                                           \
        const failure f_ = error_of(yaml);                                                         \
        INFO(f_.what);                                                                             \
        CHECK(f_.line == (expected_line));                                                         \
        CHECK_THAT(f_.what, Catch::Contains(text));                                                \
    } while (false)

ie::ip_address ip(const char* text) {
    return ie::ip_address::parse(text);
}

} // namespace

TEST_CASE("every key of a target group", "[config]") {
    const exporter_config c = parse_config(R"(---
targets:
- hosts:
  - host1
  - 192.0.2.1
  interval: 1m30s
  network: ip4
  protocol: udp
  size: 1400
  source: 192.0.2.7
  tos: 0x20
  labels:
    zone: b
    site: fra1
    n: 3
)",
                                           "t.yml");
    REQUIRE(c.groups.size() == 1);
    const target_group& g = c.groups[0];
    CHECK(g.hosts == std::vector<std::string>{"host1", "192.0.2.1"});
    CHECK(g.interval == 90s);
    CHECK(g.network == network_kind::ip4);
    CHECK(g.protocol == "udp");
    CHECK(g.size == 1400);
    CHECK(g.source == "192.0.2.7");
    CHECK(g.tos == 0x20);
    CHECK(g.labels == label_list{{"n", "3"}, {"site", "fra1"}, {"zone", "b"}});
    CHECK(g.line == 3);
}

TEST_CASE("defaults: smokeping_prober's, or the command line's", "[config]") {
    const std::string yaml = "targets:\n- hosts: [a]\n- hosts: [b]\n  interval: 2s\n  size: 100\n";
    const exporter_config c = parse_config(yaml, "t.yml");
    REQUIRE(c.groups.size() == 2);
    const target_group& a = c.groups[0];
    CHECK(a.interval == 1s);
    CHECK(a.network == network_kind::ip);
    CHECK(a.protocol == "icmp");
    CHECK(a.size == 56);
    CHECK(a.source.empty());
    CHECK(a.tos == 0);
    CHECK(a.labels.empty());
    CHECK(a.line == 2);
    CHECK(c.groups[1].line == 3);

    group_defaults flags;
    flags.interval = 250ms; // --ping.interval
    flags.size = 32;        // --ping.size
    const exporter_config d = parse_config(yaml, "t.yml", flags);
    CHECK(d.groups[0].interval == 250ms);
    CHECK(d.groups[0].size == 32);
    CHECK(d.groups[1].interval == 2s); // the file says
    CHECK(d.groups[1].size == 100);
}

TEST_CASE("empty configurations have no targets", "[config]") {
    for (const char* yaml : {"", "\n", "# nothing\n", "---\n", "targets: []\n", "targets:\n"}) {
        INFO(yaml);
        CHECK(parse_config(yaml, "t.yml").groups.empty());
    }
}

TEST_CASE("host: smokeping_prober's one-host form", "[config]") {
    const exporter_config c = parse_config("targets:\n- host: a.example\n  size: 64\n", "t.yml");
    REQUIRE(c.groups.size() == 1);
    CHECK(c.groups[0].hosts == std::vector<std::string>{"a.example"});
    CHECK_ERROR("targets:\n- hosts: [a]\n  host: b\n", 3, "either host or hosts");
    CHECK_ERROR("targets:\n- host: ''\n", 2, "host: the host is empty");
}

TEST_CASE("dscp sets tos = dscp << 2; tos and dscp together are an error", "[config]") {
    CHECK(parse_config("targets:\n- hosts: [a]\n  dscp: 46\n", "t").groups[0].tos == 184);
    CHECK(parse_config("targets:\n- hosts: [a]\n  dscp: 0\n", "t").groups[0].tos == 0);
    CHECK(parse_config("targets:\n- hosts: [a]\n  tos: 255\n", "t").groups[0].tos == 255);
    CHECK(parse_config("targets:\n- hosts: [a]\n  tos: 184\n", "t").groups[0].tos == 184);
    CHECK_ERROR("targets:\n- hosts: [a]\n  tos: 4\n  dscp: 1\n", 4,
                "dscp: cannot be given with tos (line 3)");
    CHECK_ERROR("targets:\n- hosts: [a]\n  dscp: 64\n", 3, "dscp: '64' is out of range (0..63)");
    CHECK_ERROR("targets:\n- hosts: [a]\n  tos: 256\n", 3, "tos: '256' is out of range (0..255)");
    CHECK_ERROR("targets:\n- hosts: [a]\n  tos: -1\n", 3, "tos: '-1' is not a whole number");
}

TEST_CASE("integers as smokeping_prober's YAML decoder reads them", "[config]") {
    auto tos = [](const char* text) {
        return parse_config(std::string("targets:\n- hosts: [a]\n  tos: ") + text + "\n", "t")
            .groups[0]
            .tos;
    };
    CHECK(tos("32") == 32);
    CHECK(tos("+32") == 32);
    CHECK(tos("0x20") == 32);
    CHECK(tos("0X20") == 32);
    CHECK(tos("0o40") == 32);
    CHECK(tos("040") == 32); // YAML 1.1 / Go: a leading 0 is octal
    CHECK(tos("0b100000") == 32);
    CHECK(tos("3_2") == 32);
    CHECK(tos("0") == 0);
    CHECK_ERROR("targets:\n- hosts: [a]\n  size: 1.5\n", 3, "size: '1.5' is not a whole number");
    CHECK_ERROR("targets:\n- hosts: [a]\n  size: 08\n", 3, "size: '08' is not a whole number");
    CHECK_ERROR("targets:\n- hosts: [a]\n  size: big\n", 3, "size: 'big' is not a whole number");
}

TEST_CASE("size: 24..65507", "[config]") {
    CHECK(parse_config("targets:\n- hosts: [a]\n  size: 24\n", "t").groups[0].size == 24);
    CHECK(parse_config("targets:\n- hosts: [a]\n  size: 65507\n", "t").groups[0].size == 65507);
    CHECK_ERROR("targets:\n- hosts: [a]\n  size: 23\n", 3,
                "size: '23' is out of range (24..65507)");
    CHECK_ERROR("targets:\n- hosts: [a]\n  size: 65508\n", 3, "size: '65508' is out of range");
    CHECK_ERROR("targets:\n- hosts: [a]\n  size: 99999999999999999999999\n", 3,
                "is not a whole number");
}

TEST_CASE("network, protocol and source", "[config]") {
    CHECK(parse_config("targets:\n- hosts: [a]\n  network: ip6\n", "t").groups[0].network ==
          network_kind::ip6);
    CHECK(parse_config("targets:\n- hosts: [a]\n  network: ip\n  source: '::1'\n", "t")
              .groups[0]
              .source == "::1");
    CHECK_ERROR("targets:\n- hosts: [a]\n  network: ipv4\n", 3,
                "network: 'ipv4' is not one of ip, ip4, ip6");
    CHECK_ERROR("targets:\n- hosts: [a]\n  protocol: tcp\n", 3,
                "protocol: 'tcp' is not one of icmp, udp");
    CHECK_ERROR("targets:\n- hosts: [a]\n  source: eth0\n", 3,
                "source: 'eth0' is not an IP address");
    CHECK_ERROR("targets:\n- hosts: [a]\n  source: 10.0.0.1\n  network: ip6\n", 3,
                "source: '10.0.0.1' is not an IPv6 address, as network: ip6 asks");
    CHECK_ERROR("targets:\n- hosts: [a]\n  network: ip4\n  source: ::1\n", 4,
                "source: '::1' is not an IPv4 address, as network: ip4 asks");
}

TEST_CASE("hosts: a non-empty list, no empty or repeated host", "[config]") {
    CHECK_ERROR("targets:\n- interval: 1s\n", 2, "'hosts' is missing");
    CHECK_ERROR("targets:\n- hosts: []\n", 2, "hosts: the list is empty");
    CHECK_ERROR("targets:\n- hosts: a\n", 2, "hosts: expected a list of hosts, not a single value");
    CHECK_ERROR("targets:\n- hosts:\n  - a\n  - ''\n", 4, "hosts: a host is empty");
    CHECK_ERROR("targets:\n- hosts:\n  - a\n  - b\n  - a\n", 5,
                "hosts: 'a' is listed twice in this group (first on line 3)");
    CHECK_ERROR("targets:\n- hosts:\n  - [a]\n", 3, "hosts: expected a single value, not a list");
    // The same host in two groups is not an error (expand() decides).
    CHECK(parse_config("targets:\n- hosts: [a]\n- hosts: [a]\n", "t").groups.size() == 2);
}

TEST_CASE("labels: valid names, not ours, sorted", "[config]") {
    const exporter_config c =
        parse_config("targets:\n- hosts: [a]\n  labels: {b: '2', _a: x, A9: y}\n", "t");
    CHECK(c.groups[0].labels == label_list{{"A9", "y"}, {"_a", "x"}, {"b", "2"}});
    CHECK(parse_config("targets:\n- hosts: [a]\n  labels: {}\n", "t").groups[0].labels.empty());
    CHECK_ERROR("targets:\n- hosts: [a]\n  labels:\n    9a: x\n", 4,
                "labels: '9a' is not a valid label name");
    CHECK_ERROR("targets:\n- hosts: [a]\n  labels:\n    a-b: x\n", 4, "'a-b' is not a valid label");
    CHECK_ERROR("targets:\n- hosts: [a]\n  labels:\n    __x: x\n", 4, "'__x' is not a valid label");
    CHECK_ERROR("targets:\n- hosts: [a]\n  labels:\n    site: x\n    host: y\n", 5,
                "labels: 'host' is set by the exporter itself");
    for (const char* name : {"ip", "source", "tos"})
        CHECK(error_of(std::string("targets:\n- hosts: [a]\n  labels: {") + name + ": x}\n").line ==
              3);
    CHECK_ERROR("targets:\n- hosts: [a]\n  labels:\n    a:\n", 4, "labels: 'a' has no value");
    CHECK_ERROR("targets:\n- hosts: [a]\n  labels:\n    a: [1]\n", 4,
                "labels: 'a': expected a single value, not a list");
    CHECK_ERROR("targets:\n- hosts: [a]\n  labels: [a]\n", 3, "labels: expected a mapping");
    CHECK_ERROR("targets:\n- hosts: [a]\n  labels:\n    a: x\n    a: y\n", 5,
                "labels: 'a' is given twice (first on line 4)");
}

TEST_CASE("unknown keys, repeated keys, missing values and wrong shapes", "[config]") {
    CHECK_ERROR("targets:\n- hosts: [a]\n  intervall: 1s\n", 3,
                "target group: unknown key 'intervall' (known: hosts, host, interval");
    CHECK_ERROR("target:\n- hosts: [a]\n", 1, "top level: unknown key 'target' (known: targets)");
    CHECK_ERROR("targets:\n- hosts: [a]\n  size: 64\n  size: 65\n", 4,
                "target group: 'size' is given twice (first on line 3)");
    CHECK_ERROR("targets:\n- hosts: [a]\n  size:\n", 3, "size: no value given");
    CHECK_ERROR("targets: a\n", 1, "targets: expected a list of target groups, not a single value");
    CHECK_ERROR("targets:\n- a\n", 2, "targets: each entry must be a mapping");
    CHECK_ERROR("- a\n", 1, "expected a mapping with a 'targets:' list at the top, not a list");
    CHECK_ERROR("targets:\n- hosts: [a]\n  interval: {a: 1}\n", 3,
                "interval: expected a single value, not a mapping");
}

TEST_CASE("a YAML syntax error has yaml-cpp's line", "[config]") {
    CHECK_ERROR("targets:\n- hosts: [a\n  size: 3\n", 3, "YAML syntax");
    CHECK_ERROR("targets:\n- hosts: [a]\n   size: 3\n  - x\n", 3, "YAML syntax");
    CHECK_ERROR("targets:\n  - hosts: [a]\n bad: \"x\n", 3, "YAML syntax");
}

TEST_CASE("interval: a positive Go duration", "[config][duration]") {
    auto interval = [](const char* text) {
        return parse_config(std::string("targets:\n- hosts: [a]\n  interval: ") + text + "\n", "t")
            .groups[0]
            .interval;
    };
    CHECK(interval("500ms") == 500ms);
    CHECK(interval("1.5s") == 1500ms);
    CHECK(interval("1h") == 1h);
    CHECK_ERROR("targets:\n- hosts: [a]\n  interval: 1x\n", 3,
                "interval: '1x' is not a duration (e.g. 1s, 500ms)");
    CHECK_ERROR("targets:\n- hosts: [a]\n  interval: 1\n", 3, "interval: '1' is not a duration");
    CHECK_ERROR("targets:\n- hosts: [a]\n  interval: 0s\n", 3,
                "interval: '0s' must be more than 0");
    CHECK_ERROR("targets:\n- hosts: [a]\n  interval: -1s\n", 3,
                "interval: '-1s' must be more than 0");
}

TEST_CASE("Go's time.ParseDuration", "[duration]") {
    using std::chrono::nanoseconds;
    const std::pair<const char*, nanoseconds> valid[] = {
        {"0", 0ns},
        {"-0", 0ns},
        {"+0", 0ns},
        {"0s", 0ns},
        {"1s", 1s},
        {"+1s", 1s},
        {"-2s", -2s},
        {"500ms", 500ms},
        {"250us", 250us},
        {"250\xC2\xB5s", 250us}, // µs, micro sign
        {"250\xCE\xBCs", 250us}, // μs, greek mu
        {"7ns", 7ns},
        {"1m30s", 90s},
        {"1h2m3s4ms5us6ns", 1h + 2min + 3s + 4ms + 5us + 6ns},
        {"1.5s", 1500ms},
        {".5s", 500ms},
        {"1.s", 1s},
        {"1.5h", 90min},
        {"0.000000001s", 1ns},
        {"1.0000000009s", 1s}, // the fraction's tail below 1 ns is cut, as in Go
        {"3s1s", 4s},          // Go sums repeated units
        {"9223372036854775807ns", nanoseconds{INT64_MAX}},
        {"-9223372036854775808ns", nanoseconds{INT64_MIN}},
        {"2562047h", 2562047h},
    };
    for (const auto& [text, expected] : valid) {
        INFO(text);
        const std::optional<nanoseconds> d = parse_go_duration(text);
        REQUIRE(d.has_value());
        CHECK(d->count() == expected.count());
    }
    for (const char* text : {"",
                             "s",
                             "1",
                             "10",
                             "-",
                             "+",
                             ".s",
                             "1x",
                             "1 s",
                             " 1s",
                             "1s ",
                             "1S",
                             "1sec",
                             "1.5.5s",
                             "1e3s",
                             "0x10s",
                             "9223372036854775808ns",
                             "2562048h",
                             "-9223372036854775809ns",
                             "1d",
                             "1ms5"}) {
        INFO(text);
        CHECK_FALSE(parse_go_duration(text).has_value());
    }
}

TEST_CASE("load_config reads a file; a missing file is an error on line 0", "[config]") {
    const std::filesystem::path dir = std::filesystem::temp_directory_path();
    const std::string path = (dir / ("exporter_config_" + std::to_string(::getpid()) + ".yml"));
    {
        std::ofstream out(path);
        out << "targets:\n- hosts: [a]\n  size: 7\n";
    }
    try {
        load_config(path);
        FAIL("no error");
    } catch (const config_error& e) {
        CHECK(e.file() == path);
        CHECK(e.line() == 3);
        CHECK(std::string(e.what()) == path + ":3: size: '7' is out of range (24..65507)");
    }
    {
        std::ofstream out(path);
        out << "targets:\n- hosts: [a]\n";
    }
    CHECK(load_config(path, {2s, 100}).groups.at(0).interval == 2s);
    std::filesystem::remove(path);
    try {
        load_config(path);
        FAIL("no error");
    } catch (const config_error& e) {
        CHECK(e.line() == 0);
        CHECK(std::string(e.what()) == path + ": cannot read: No such file or directory");
    }
    CHECK_THROWS_AS(load_config(dir.string()), config_error);
}

TEST_CASE("parse_shard", "[shard]") {
    const std::optional<shard_spec> s = parse_shard("1/4");
    REQUIRE(s);
    CHECK(s->index == 1);
    CHECK(s->count == 4);
    CHECK(parse_shard("0/1"));
    CHECK(parse_shard("4294967294/4294967295"));
    for (const char* text : {"", "1", "/", "1/", "/4", "4/4", "5/4", "0/0", "-1/4", "1/-4", "+1/4",
                             " 1/4", "1/4 ", "1 /4", "1/4/5", "a/4", "1/4x", "0/4294967296"}) {
        INFO(text);
        CHECK_FALSE(parse_shard(text));
    }
}

TEST_CASE("shard_of is FNV-1a 64 of the host, modulo the count: fixed values", "[shard]") {
    // FNV-1a's published test vectors (isthe.com/chongo/tech/comp/fnv).
    CHECK(fnv1a_64("") == 0xcbf29ce484222325ull);
    CHECK(fnv1a_64("a") == 0xaf63dc4c8601ec8cull);
    CHECK(fnv1a_64("foobar") == 0x85944171f73967e8ull);
    // Changing the hash moves hosts between exporters: these must not change.
    CHECK(fnv1a_64("127.0.0.1") == 0xaabafe7104d914beull);
    CHECK(shard_of("127.0.0.1", 4) == 2);
    CHECK(shard_of("example.com", 4) == 2);
    CHECK(shard_of("host-1", 4) == 1);
    CHECK(shard_of("::1", 4) == 0);
    CHECK(shard_of("::1", 3) == 2);
    CHECK(shard_of("anything", 1) == 0);
    CHECK_THROWS_AS(shard_of("a", 0), std::invalid_argument);
}

TEST_CASE("shard_of spreads 10,000 hosts evenly over 4 shards", "[shard]") {
    std::array<int, 4> count{};
    for (int i = 0; i < 10'000; ++i)
        ++count[shard_of("host-" + std::to_string(i) + ".example.net", 4)];
    for (int n : count) {
        INFO(n);
        CHECK(n >= 2'000);
        CHECK(n <= 3'000);
    }
}

namespace {

// A resolver that knows a few names and records what it was asked.
struct fake_resolver {
    std::vector<std::pair<std::string, network_kind>> calls;
    std::map<std::string, std::vector<ie::ip_address>> names{
        {"dual", {ip("2001:db8::1"), ip("192.0.2.1"), ip("192.0.2.2")}},
        {"v6only", {ip("2001:db8::6")}},
        {"v4only", {ip("192.0.2.4")}},
        {"also-dual", {ip("192.0.2.1")}},
    };
    resolve_function function() {
        return [this](const std::string& host, network_kind network) {
            calls.emplace_back(host, network);
            auto it = names.find(host);
            return it == names.end() ? std::vector<ie::ip_address>{} : it->second;
        };
    }
};

exporter_config config_of(const std::string& yaml) {
    return parse_config(yaml, "t.yml");
}

} // namespace

TEST_CASE("expand: order, spec fields, literals and names", "[expand]") {
    fake_resolver dns;
    const expanded_targets t = expand(config_of(R"(targets:
- hosts: [dual, 198.51.100.9, nowhere, 'fe80::1%1']
  interval: 2s
  size: 100
  tos: 8
  labels: {site: x}
- hosts: [v6only, v4only]
  source: 192.0.2.200
)"),
                                      {}, dns.function());
    REQUIRE(t.targets.size() == 4);
    const target_spec& dual = t.targets[0];
    CHECK(dual.host == "dual");
    CHECK(dual.ip == ip("192.0.2.1")); // network ip: the first IPv4 address, as Go's
    CHECK(dual.source.empty());
    CHECK(dual.tos == 8);
    CHECK(dual.size == 100);
    CHECK(dual.interval == 2s);
    CHECK(dual.labels == label_list{{"site", "x"}});
    CHECK(t.targets[1].host == "198.51.100.9");
    CHECK(t.targets[1].ip == ip("198.51.100.9"));
    CHECK(t.targets[2].host == "fe80::1%1");
    CHECK(t.targets[2].ip == ie::ip_address::parse("fe80::1%1"));
    CHECK(t.targets[3].host == "v4only"); // v6only has no address of the source's family
    CHECK(t.targets[3].source == "192.0.2.200");
    CHECK(t.targets[3].interval == 1s);
    CHECK(t.unresolved == std::vector<std::string>{"nowhere", "v6only"});
    // Literals never reach the resolver; a source narrows the family asked for.
    CHECK(dns.calls ==
          std::vector<std::pair<std::string, network_kind>>{{"dual", network_kind::ip},
                                                            {"nowhere", network_kind::ip},
                                                            {"v6only", network_kind::ip4},
                                                            {"v4only", network_kind::ip4}});
}

TEST_CASE("expand: network families", "[expand]") {
    fake_resolver dns;
    const expanded_targets t = expand(config_of(R"(targets:
- hosts: [dual, v4only, '::1', 127.0.0.1]
  network: ip6
- hosts: [dual, v6only, '::1', 127.0.0.1]
  network: ip4
- hosts: [v6only]
)"),
                                      {}, dns.function());
    REQUIRE(t.targets.size() == 5);
    CHECK(t.targets[0].ip == ip("2001:db8::1"));
    CHECK(t.targets[1].ip == ip("::1"));
    CHECK(t.targets[2].ip == ip("192.0.2.1"));
    CHECK(t.targets[3].ip == ip("127.0.0.1"));
    CHECK(t.targets[4].ip == ip("2001:db8::6")); // network ip, no IPv4: the first address
    // A host that fails in one group is reported, even if another group
    // resolves it; each name once.
    CHECK(t.unresolved == std::vector<std::string>{"v4only", "127.0.0.1", "v6only", "::1"});
}

TEST_CASE("expand: the same identity once, first group wins; one lookup per name and family",
          "[expand]") {
    fake_resolver dns;
    const expanded_targets t = expand(config_of(R"(targets:
- hosts: [dual, v4only]
  interval: 5s
- hosts: [v4only, dual]
  interval: 7s
- hosts: [dual]
  labels: {a: b}
- hosts: [dual]
  tos: 4
- hosts: [dual]
  source: 192.0.2.200
- hosts: [also-dual]
)"),
                                      {}, dns.function());
    REQUIRE(t.targets.size() == 6);
    CHECK(t.targets[0].host == "dual");
    CHECK(t.targets[0].interval == 5s);
    CHECK(t.targets[1].host == "v4only");
    CHECK(t.targets[1].interval == 5s);
    CHECK(t.targets[2].labels == label_list{{"a", "b"}});
    CHECK(t.targets[3].tos == 4);
    CHECK(t.targets[4].source == "192.0.2.200");
    CHECK(t.targets[5].host == "also-dual"); // same address, another host: another series
    CHECK(t.targets[5].ip == t.targets[0].ip);
    CHECK(t.unresolved.empty());
    CHECK(dns.calls == std::vector<std::pair<std::string, network_kind>>{
                           {"dual", network_kind::ip},
                           {"v4only", network_kind::ip},
                           {"dual", network_kind::ip4}, // the source's family
                           {"also-dual", network_kind::ip}});
}

TEST_CASE("expand: the shard filter comes before resolution", "[expand][shard]") {
    std::string yaml = "targets:\n- hosts:\n";
    std::vector<std::string> hosts;
    for (int i = 0; i < 200; ++i) {
        hosts.push_back("h" + std::to_string(i) + ".example");
        yaml += "  - " + hosts.back() + "\n";
    }
    yaml += "  - 192.0.2.77\n";
    hosts.push_back("192.0.2.77");
    const exporter_config config = config_of(yaml);
    std::vector<std::string> seen;
    for (std::uint32_t k = 0; k < 3; ++k) {
        std::vector<std::string> asked;
        // Every name resolves to the same address, and a name that is not
        // this shard's would fail the test if asked for.
        const resolve_function resolve = [&](const std::string& host, network_kind) {
            CHECK(shard_of(host, 3) == k);
            asked.push_back(host);
            return std::vector<ie::ip_address>{ip("192.0.2.1")};
        };
        const expanded_targets t = expand(config, {k, 3}, resolve);
        for (const target_spec& spec : t.targets) {
            CHECK(shard_of(spec.host, 3) == k);
            seen.push_back(spec.host);
        }
        CHECK(asked.size() + (shard_of("192.0.2.77", 3) == k) == t.targets.size());
    }
    std::sort(seen.begin(), seen.end());
    std::sort(hosts.begin(), hosts.end());
    CHECK(seen == hosts); // every host in exactly one shard
}

TEST_CASE("keep_unresolved: a name that fails again keeps its last targets", "[expand]") {
    fake_resolver dns;
    const exporter_config config = config_of(R"(targets:
- hosts: [dual, v4only, 192.0.2.9]
- hosts: [dual]
  network: ip6
)");
    const expanded_targets before = expand(config, {}, dns.function());
    REQUIRE(before.targets.size() == 4);
    dns.names.erase("dual"); // DNS fails for dual this time
    const expanded_targets after =
        keep_unresolved(before.targets, expand(config, {}, dns.function()));
    REQUIRE(after.targets.size() == 4);
    CHECK(after.targets[0].host == "v4only");
    CHECK(after.targets[1].host == "192.0.2.9");
    CHECK(after.targets[2].key() == before.targets[0].key()); // dual, IPv4
    CHECK(after.targets[3].key() == before.targets[3].key()); // dual, IPv6
    CHECK(after.unresolved == std::vector<std::string>{"dual"});
    // A host that resolves is not doubled; one that never resolved stays out.
    const expanded_targets again =
        keep_unresolved(after.targets, expand(config, {}, dns.function()));
    CHECK(again.targets.size() == 4);
    CHECK(keep_unresolved({}, expand(config, {}, dns.function())).targets.size() == 2);
}
