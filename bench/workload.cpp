// SPDX-License-Identifier: MIT
// bench_workload: the engine side of the harness's workloads (harness.cpp).
// A thin driver: it parses its arguments, builds the target list, calls the
// library and prints one line,
//
//     RESULT ping_ms=... sent=... replies=... timeouts=... errors=... ...
//
// which the harness reads. It sends nothing by itself: the harness runs it
// inside the private namespace it created, and refuses to run it otherwise.
//
//   fleet   one ping to each of --count targets (--same: all to --first),
//           on one engine or, with --engines N > 1, on an engine_pool
//   series  --count targets, each pinged --pings times every --period-ms
//           (ping_fanout: the original CLI's style)
//   scale   --count pings over --span silent targets, all in flight at once,
//           timeouts log-uniform in [--timeout-min-ms, --timeout-max-ms]
#include <icmpengine/icmpengine.hpp>

#include "fanout_core.hpp" // scale: the fan-out machine with a sink that keeps nothing

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::engine_config;
using icmpengine::engine_stats;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;
using clock_type = std::chrono::steady_clock;

namespace {

struct arguments {
    std::string mode;
    std::map<std::string, std::string> values;

    std::string text(const std::string& name, const std::string& fallback) const {
        auto it = values.find(name);
        return it == values.end() ? fallback : it->second;
    }
    std::uint64_t number(const std::string& name, std::uint64_t fallback) const {
        auto it = values.find(name);
        if (it == values.end())
            return fallback;
        std::size_t used = 0;
        const unsigned long long v = std::stoull(it->second, &used);
        if (used != it->second.size())
            throw std::invalid_argument("--" + name + " " + it->second + ": not a number");
        return v;
    }
    bool flag(const std::string& name) const { return values.count(name) != 0; }
};

arguments parse(int argc, char** argv) {
    if (argc < 2)
        throw std::invalid_argument("usage: bench_workload fleet|series|scale [--name value]...");
    arguments a;
    a.mode = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg.substr(0, 2) != "--")
            throw std::invalid_argument("unexpected argument " + std::string(arg));
        const std::string name(arg.substr(2));
        if (name == "same" || name == "no-df" || name == "pin") {
            a.values.insert_or_assign(name, std::string("1"));
        } else {
            if (i + 1 >= argc)
                throw std::invalid_argument("--" + name + " needs a value");
            a.values.insert_or_assign(name, std::string(argv[++i]));
        }
    }
    return a;
}

/// `count` addresses from `first` upward (or `count` times `first`), cycling
/// over `span` addresses if span > 0.
std::vector<ip_address> targets(const ip_address& first, std::uint64_t count, bool same,
                                std::uint64_t span) {
    std::vector<ip_address> list;
    list.reserve(count);
    const std::uint32_t base = first.v4_value();
    for (std::uint64_t i = 0; i < count; ++i) {
        if (same || first.is_v6())
            list.push_back(first);
        else
            list.push_back(
                ip_address::from_v4(base + static_cast<std::uint32_t>(span > 0 ? i % span : i)));
    }
    return list;
}

/// The engine settings of every workload (README, "Performance"): DF set
/// (it spares the kernel the IP ID hash, ~3 %), 512-byte receive buffers,
/// and no more slots than pings in flight (`max_in_flight`, which a
/// fan-out passes as its window).
engine_config config_from(const arguments& a, std::uint32_t max_in_flight) {
    engine_config c;
    c.dont_fragment = !a.flag("no-df");
    c.send_batch = static_cast<std::uint32_t>(a.number("send-batch", c.send_batch));
    // The engine grows its slot table to 65,536 before it reuses a slot;
    // with at most `window` in flight, a table that small stays in cache
    // and spares the 4.7 MB (and page faults) of a full one.
    c.max_in_flight = static_cast<std::uint32_t>(a.number("max-in-flight", max_in_flight));
    // Replies on loopback are small: 512-byte buffers hold one with its
    // address and control messages, and touch a quarter of the memory.
    c.receive_buffer_size = static_cast<std::uint32_t>(a.number("receive-buffer-size", 512));
    c.receive_buffers = static_cast<std::uint32_t>(a.number("receive-buffers", c.receive_buffers));
    return c;
}

struct tally {
    std::uint64_t replies = 0;
    std::uint64_t timeouts = 0;
    std::uint64_t errors = 0;
    double rtt_sum_us = 0;

    void add(const ping_result& r) {
        switch (r.status) {
        case ping_status::reply:
            ++replies;
            rtt_sum_us += std::chrono::duration<double, std::micro>(r.rtt).count();
            break;
        case ping_status::timeout:
            ++timeouts;
            break;
        default:
            ++errors;
            break;
        }
    }
};

/// This process's peak resident set (VmHWM), in KiB.
long peak_rss_kb() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (f == nullptr)
        return 0;
    char line[256];
    long kb = 0;
    while (std::fgets(line, sizeof line, f) != nullptr)
        if (std::strncmp(line, "VmHWM:", 6) == 0)
            kb = std::strtol(line + 6, nullptr, 10);
    std::fclose(f);
    return kb;
}

void print_result(double ping_ms, std::uint64_t sent, const tally& t, const engine_stats& s,
                  std::uint64_t peak_in_flight) {
    std::printf(
        "RESULT ping_ms=%.3f sent=%llu replies=%llu timeouts=%llu errors=%llu "
        "rtt_us=%.2f submissions=%llu overruns=%llu peak_in_flight=%llu rss_kb=%ld\n",
        ping_ms, static_cast<unsigned long long>(sent), static_cast<unsigned long long>(t.replies),
        static_cast<unsigned long long>(t.timeouts), static_cast<unsigned long long>(t.errors),
        t.replies > 0 ? t.rtt_sum_us / static_cast<double>(t.replies) : 0.0,
        static_cast<unsigned long long>(s.submissions),
        static_cast<unsigned long long>(s.receive_overruns),
        static_cast<unsigned long long>(peak_in_flight), peak_rss_kb());
}

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

int run_fleet(const arguments& a) {
    const ip_address first = ip_address::parse(a.text("first", "127.1.0.1"));
    const std::vector<ip_address> list =
        targets(first, a.number("count", 60000), a.flag("same"), 0);
    const auto window = static_cast<std::uint32_t>(a.number("window", 256));
    const icmpengine::ping_all_options options{
        .timeout = std::chrono::milliseconds(a.number("timeout-ms", 1000)), .window = window};
    const auto engines = static_cast<unsigned>(a.number("engines", 1));
    std::vector<ping_result> results;
    tally t;
    double ping_ms = 0;
    engine_stats stats;
    const std::string shape = a.text("shape", "ping_all");
    if (shape == "when_all") {
        // The README's example, the shape every user writes first: a task
        // per target from engine.ping(), all awaited by one when_all. With
        // --window N the engine's max_in_flight is N, and ping() waits for
        // a free slot (the engine's own backpressure); without it every
        // ping is in flight at once.
        if (engines != 1)
            throw std::invalid_argument("--shape when_all runs on one engine");
        const auto in_flight = static_cast<std::uint32_t>(
            a.flag("window") ? window : std::max<std::size_t>(list.size(), 1));
        engine eng(config_from(a, in_flight));
        if (const std::error_code ec = eng.open(first.family()))
            throw std::runtime_error("opening the ICMP socket: " + ec.message());
        const auto timeout = options.timeout;
        const auto t0 = clock_type::now();
        std::vector<icmpengine::task<ping_result>> pings;
        pings.reserve(list.size());
        for (const ip_address& target : list)
            pings.push_back(eng.ping(target, timeout));
        results = eng.run(icmpengine::when_all(std::move(pings)));
        ping_ms = ms_since(t0);
        stats = eng.stats();
    } else if (shape != "ping_all") {
        throw std::invalid_argument("--shape " + shape + ": ping_all or when_all");
    } else if (engines == 1) {
        results.resize(list.size());
        engine eng(config_from(a, window));
        if (const std::error_code ec = eng.open(first.family()))
            throw std::runtime_error("opening the ICMP socket: " + ec.message());
        const auto t0 = clock_type::now();
        eng.run(icmpengine::ping_all(eng, list, results, options));
        ping_ms = ms_since(t0);
        stats = eng.stats();
    } else {
        results.resize(list.size());
        icmpengine::engine_pool pool(
            {.engines = engines, .engine = config_from(a, window), .pin_threads = a.flag("pin")});
        if (const std::error_code ec = pool.open(first.family()))
            throw std::runtime_error("opening the ICMP sockets: " + ec.message());
        const auto t0 = clock_type::now();
        pool.ping_all(list, results, options);
        ping_ms = ms_since(t0);
        stats = pool.stats();
    }
    for (const ping_result& r : results)
        t.add(r);
    print_result(ping_ms, list.size(), t, stats, 0);
    return 0;
}

int run_series(const arguments& a) {
    const ip_address first = ip_address::parse(a.text("first", "127.1.0.1"));
    const std::vector<ip_address> list = targets(first, a.number("count", 600), false, 0);
    const std::uint64_t pings = a.number("pings", 100);
    tally t;
    icmpengine::ping_fanout fan(
        list, {.series = {.count = pings,
                          .period = std::chrono::milliseconds(a.number("period-ms", 10)),
                          .timeout = std::chrono::milliseconds(a.number("timeout-ms", 200)),
                          .keep_results = false},
               .on_ping = [&](const icmpengine::ping_event& e) { t.add(e.result); }});
    engine eng(config_from(a, engine_config{}.max_in_flight));
    if (const std::error_code ec = eng.open(first.family()))
        throw std::runtime_error("opening the ICMP socket: " + ec.message());
    const auto t0 = clock_type::now();
    eng.run(fan.run(eng));
    const double ping_ms = ms_since(t0);
    print_result(ping_ms, list.size() * pings, t, eng.stats(), 0);
    return 0;
}

int run_scale(const arguments& a) {
    const ip_address first = ip_address::parse(a.text("first", "198.18.128.1"));
    const std::uint64_t count = a.number("count", 1'000'000);
    const std::vector<ip_address> list = targets(first, count, false, a.number("span", 32000));
    // Mixed timeouts, log-uniform: the deadline heap gets them in random
    // order. The shortest is longer than sending them all takes, so that
    // every ping is in flight at once before the first one times out.
    const double lo = std::log(static_cast<double>(a.number("timeout-min-ms", 3000)));
    const double hi = std::log(static_cast<double>(a.number("timeout-max-ms", 6000)));
    std::mt19937_64 rng(a.number("seed", 1));
    std::uniform_real_distribution<double> u(lo, hi);
    std::vector<std::chrono::nanoseconds> timeouts(count);
    for (auto& timeout : timeouts)
        timeout = std::chrono::nanoseconds(static_cast<std::int64_t>(std::exp(u(rng)) * 1e6));

    engine eng(config_from(a, static_cast<std::uint32_t>(std::max<std::uint64_t>(count, 1))));
    if (const std::error_code ec = eng.open(first.family()))
        throw std::runtime_error("opening the ICMP socket: " + ec.message());
    const std::string shape = a.text("shape", "frame-free");
    if (shape == "coroutines") {
        // The idiomatic shape: a task per ping from engine.ping(), all
        // awaited by one when_all. The pings are all started before the
        // loop's first turn, after which a spawned probe reads the number in flight
        // (none can have ended but errors, and timeouts that fell due while
        // they were being started).
        std::uint64_t peak = 0;
        eng.spawn([](engine& e, std::uint64_t n, std::uint64_t& out) -> icmpengine::task<> {
            // Spawned tasks start before run()'s root: wait (a turn of the
            // loop at a time) until the root's first step started them all.
            while (e.stats().sent < n)
                co_await e.sleep_for(std::chrono::milliseconds(1));
            out = e.stats().in_flight;
        }(eng, count, peak));
        const auto t0 = clock_type::now();
        std::vector<icmpengine::task<ping_result>> pings;
        pings.reserve(count);
        for (std::uint64_t i = 0; i < count; ++i)
            pings.push_back(eng.ping(list[i], timeouts[i]));
        tally t;
        for (const ping_result& r : eng.run(icmpengine::when_all(std::move(pings))))
            t.add(r);
        print_result(ms_since(t0), count, t, eng.stats(), peak);
        return 0;
    }
    if (shape != "frame-free")
        throw std::invalid_argument("--shape " + shape + ": frame-free or coroutines");
    // Results go to a sink that keeps nothing per target: the fan-out
    // machine under ping_all (lib/fanout_core.hpp) without ping_all's
    // results array, so that what stays per ping is the engine's state.
    // With the window as large as the list, every ping is sent before the
    // loop first looks at the clock, so no ping can time out before all
    // were sent: the peak is the number sent less those that ended
    // otherwise (errors; replies, had a target answered) by the time the
    // first result arrives.
    struct tally_sink final : icmpengine::detail::fanout_sink {
        engine& eng;
        tally t;
        std::optional<std::uint64_t> peak;
        explicit tally_sink(engine& e) : fanout_sink(false), eng(e) {}
        void ended(std::size_t, std::uint64_t, const ping_result& r) override {
            if (!peak) {
                const engine_stats s = eng.stats();
                peak = s.sent - s.replies - s.icmp_errors - s.send_errors - s.cancelled;
            }
            t.add(r);
        }
    } sink(eng);
    icmpengine::detail::fanout_core core(
        list, {.timeouts = timeouts, .window = static_cast<std::uint32_t>(count)}, sink,
        icmpengine::detail::target_source(list.size()));
    const auto t0 = clock_type::now();
    eng.run(core.run(eng));
    core.rethrow_if_failed();
    tally& t = sink.t;
    const std::optional<std::uint64_t>& peak = sink.peak;
    print_result(ms_since(t0), count, t, eng.stats(), peak.value_or(0));
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        const arguments a = parse(argc, argv);
        if (a.mode == "fleet")
            return run_fleet(a);
        if (a.mode == "series")
            return run_series(a);
        if (a.mode == "scale")
            return run_scale(a);
        throw std::invalid_argument("unknown workload " + a.mode + " (fleet, series, scale)");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_workload: %s\n", e.what());
        return 2;
    }
}
