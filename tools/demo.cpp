// SPDX-License-Identifier: MIT
// icmpengine-demo: pings a few addresses a few times, concurrently (a
// ping_fanout), and prints every result. The README's quick start runs it
// on loopback inside a private network namespace. (The full fping-class CLI
// is tools/icmpengine.)
//
//     icmpengine-demo [-c COUNT] [ADDRESS...]     (default: 127.0.0.1 ::1)
#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;

namespace {

void print(const icmpengine::ping_event& e) {
    const icmpengine::ping_result& r = e.result;
    const std::string target = e.series.target.to_string();
    if (r.status == icmpengine::ping_status::reply)
        std::printf("%-16s seq=%-5u ttl=%-3u bytes=%u rtt=%.3f ms\n", target.c_str(), r.sequence,
                    r.ttl, r.bytes, std::chrono::duration<double, std::milli>(r.rtt).count());
    else
        std::printf("%-16s seq=%-5u %s%s%s\n", target.c_str(), r.sequence,
                    std::string(to_string(r.status)).c_str(), r.error ? ": " : "",
                    r.error ? r.error.message().c_str() : "");
}

} // namespace

int main(int argc, char** argv) {
    int count = 3;
    std::vector<icmpengine::ip_address> targets;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string_view arg = argv[i];
            if (arg == "-c" && i + 1 < argc) {
                count = std::stoi(argv[++i]);
                if (count < 1)
                    throw std::invalid_argument("-c: count must be at least 1");
            } else {
                targets.push_back(icmpengine::ip_address::parse(arg));
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "icmpengine-demo: %s\n", e.what());
        return 3;
    }
    if (targets.empty())
        targets = {icmpengine::ip_address::parse("127.0.0.1"),
                   icmpengine::ip_address::parse("::1")};

    // Every target at once, one ping per second each, as ping(8) does.
    icmpengine::ping_fanout fan(targets, {.series = {.count = static_cast<std::uint64_t>(count),
                                                     .period = 1s,
                                                     .timeout = 1s,
                                                     .keep_results = false},
                                          .on_ping = print});
    icmpengine::engine eng;
    eng.run(fan.run(eng));

    const icmpengine::engine_stats s = eng.stats();
    std::printf("sent %llu, replies %llu, timeouts %llu, errors %llu\n",
                static_cast<unsigned long long>(s.sent), static_cast<unsigned long long>(s.replies),
                static_cast<unsigned long long>(s.timeouts),
                static_cast<unsigned long long>(s.icmp_errors + s.send_errors));
    return s.replies == s.sent ? 0 : 1;
}
