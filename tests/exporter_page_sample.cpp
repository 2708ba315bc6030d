// SPDX-License-Identifier: MIT
// `exporter_page_sample OUT.html`: writes the status page for ten
// synthetic but realistic targets (an hour at 1 Hz, fixed seed): steady,
// jittery, 5 % and 50 % loss, dead, IPv6, long names, labels, a route
// change, a flapping link. tests/exporter/check_page.py loads it in
// headless Chromium; docs/exporter-status.png is its screenshot.
#include "status_page.hpp"

#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using namespace icmpengine_exporter;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::system_clock;
// 2026-12-05 12:00:00 UTC: a fixed picture.
const clock_type::time_point start(std::chrono::seconds(1'796'472'000));

struct profile {
    const char* host;
    const char* ip;
    label_list labels;
    // RTT in ms of ping i (0..3599), or a negative value for a lost ping.
    double (*rtt)(int i, std::mt19937_64& rng);
};

double normal(std::mt19937_64& rng, double mean, double sd) {
    return std::normal_distribution<double>(mean, sd)(rng);
}
bool chance(std::mt19937_64& rng, double p) {
    return std::bernoulli_distribution(p)(rng);
}

const std::vector<profile> profiles = {
    {"gw.office.example.net",
     "192.0.2.1",
     {{"site", "office"}},
     [](int, std::mt19937_64& r) { return std::max(0.3, normal(r, 0.8, 0.05)); }},
    {"cdn-edge-fra.example.com",
     "198.51.100.23",
     {{"site", "fra"}, {"tier", "edge"}},
     [](int, std::mt19937_64& r) {
         return 11.0 + std::lognormal_distribution<double>(0.5, 0.9)(r);
     }},
    {"vpn.branch-7.example.org",
     "203.0.113.7",
     {{"site", "branch-7"}},
     [](int, std::mt19937_64& r) {
         return chance(r, 0.05) ? -1.0 : std::max(20.0, normal(r, 34.0, 3.0));
     }},
    {"lte-backup.example.net",
     "192.0.2.77",
     {{"link", "lte"}},
     [](int i, std::mt19937_64& r) {
         const bool congested = (i / 600) % 2 == 1;
         return chance(r, congested ? 0.5 : 0.02)
                    ? -1.0
                    : 60.0 + std::lognormal_distribution<double>(congested ? 3.5 : 2.5, 0.5)(r);
     }},
    {"old-printer.example.net", "192.0.2.200", {}, [](int, std::mt19937_64&) { return -1.0; }},
    {"ipv6.example.org",
     "2001:db8::53",
     {{"family", "v6"}},
     [](int, std::mt19937_64& r) { return std::max(5.0, normal(r, 18.5, 0.6)); }},
    {"a-very-long-host-name-for-the-storage-cluster-node-042.eu-west.internal.example.com",
     "2001:db8:4000:8000:1234:5678:9abc:def0",
     {{"cluster", "storage"}, {"rack", "r42"}},
     [](int, std::mt19937_64& r) { return std::max(1.0, normal(r, 4.2, 0.4)); }},
    {"transatlantic.example.net",
     "198.51.100.99",
     {{"site", "nyc"}},
     [](int i, std::mt19937_64& r) {
         // A route change 40 minutes in.
         return i < 2400 ? std::max(70.0, normal(r, 78.0, 1.5))
                         : std::max(90.0, normal(r, 96.0, 2.0));
     }},
    {"flapping-switch.example.net",
     "192.0.2.66",
     {{"site", "office"}},
     [](int i, std::mt19937_64& r) {
         const bool down = (i % 900) > 780;
         return down || chance(r, 0.01) ? -1.0 : std::max(0.5, normal(r, 1.6, 0.4));
     }},
    {"db-primary.example.net",
     "10.20.30.40",
     {{"role", "db"}, {"site", "fra"}},
     [](int i, std::mt19937_64& r) {
         // Busy every quarter hour: a wide spread, a few losses.
         const bool busy = (i % 900) < 120;
         return busy && chance(r, 0.02) ? -1.0
                                        : 2.0 + std::lognormal_distribution<double>(
                                                    busy ? 1.0 : -1.0, busy ? 1.0 : 0.3)(r);
     }},
};

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUT.html\n", argv[0]);
        return 2;
    }
    std::mt19937_64 rng(12);
    std::deque<target_spec> specs;
    std::deque<history_ring> rings;
    std::vector<target_view> views;
    for (const profile& p : profiles) {
        target_spec& s = specs.emplace_back();
        s.host = p.host;
        s.ip = icmpengine::ip_address::parse(p.ip);
        s.labels = p.labels;
        history_ring& h = rings.emplace_back();
        target_view v{&s, 0, 0, &h};
        for (int i = 0; i < 3600; ++i) {
            const double ms = p.rtt(i, rng);
            const auto when = start + std::chrono::seconds(i) + std::chrono::milliseconds(137);
            if (ms < 0) {
                h.record(when, std::nullopt);
            } else {
                h.record(when, std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1e6)));
                ++v.received;
            }
            ++v.sent;
        }
        views.push_back(v);
    }
    status_page_options options;
    options.version = "0.2.0";
    const std::string page = render_status_page(views, start + 3600s, options);
    std::ofstream out(argv[1], std::ios::binary);
    out << page;
    out.close();
    if (!out) {
        std::fprintf(stderr, "%s: cannot write %s\n", argv[0], argv[1]);
        return 1;
    }
    std::printf("%s: %zu bytes, %zu targets\n", argv[1], page.size(), views.size());
    return 0;
}
