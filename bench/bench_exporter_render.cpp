// SPDX-License-Identifier: MIT
// icmpengine-exporter's /metrics page in continuous mode (issue 12: 10,000
// targets in under 20 ms of CPU): the per-target families of
// continuous_metrics (the code continuous_prober::render runs) plus the
// prober's own, as one string (render_page) or streamed in reused chunks as
// /metrics sends it (render_page_streamed, stream_prober), for 1,000 / 10,000 / 100,000
// targets with a week's worth of counters at 1 Hz and smokeping_prober's 20
// default buckets. No network: the targets are only label sets (stream_prober
// opens its prober's ICMP sockets, which needs the privilege to, and sends nothing).
//
//     build/bench/bench_exporter_render --benchmark_counters_tabular=true
//
// s_per_target is the CPU time per target; page_MB the page's size (4 KB
// a target: 30 lines, 21 of them histogram buckets, as smokeping_prober's).
// What it costs depends on whether the page's memory is fresh: each scrape
// allocates the page anew, and glibc maps allocations that large afresh
// (mmap), so every scrape page-faults its way through tens of MB. To see
// the cost of rendering alone, keep freed memory in the heap:
//
//     t=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824
//     GLIBC_TUNABLES=$t build/bench/bench_exporter_render --benchmark_counters_tabular=true
//
// (what mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD) would do in the
// exporter, at the price of keeping the page's memory between scrapes).
// Measured on 2026-12-05 (2-core VM, load ~9 from other builds, -O2),
// CPU per page: reused memory 0.51 ms / 9.0 ms / 101 ms for 1,000 /
// 10,000 / 100,000 targets (0.5-1.0 us a target); fresh memory 24 ms /
// 160 ms / 2.0 s, page faults and zeroing being most of it on this VM.
//
// render_page_streamed is what /metrics does since it streams
// (metrics_stream.cpp): no page-sized memory, one ~256 KB chunk reused
// (its capacity ends near 600 KB), without any GLIBC_TUNABLES. Measured
// 2026-12-05 (load ~2): 0.58 ms / 5.6 ms / 82 ms for 1,000 / 10,000 /
// 100,000 targets, against render_page's 25 ms / 206 ms / 2.1 s in the
// same run. stream_prober runs the real metrics_stream on a real
// continuous_prober (all counters 0, so shorter numbers): 2.9 ms / 51 ms
// for 10,000 / 100,000 targets.
#include "continuous.hpp"
#include "continuous_metrics.hpp"
#include "metrics_stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <span>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace ex = icmpengine_exporter;

namespace {

const std::vector<double> default_buckets = {
    5e-05,  0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128,  0.0256,
    0.0512, 0.1024, 0.2048, 0.4096, 0.8192, 1.6384, 3.2768, 6.5536, 13.1072, 26.2144};

/// Targets as a fleet's config names them: a host name, its address
/// (RFC 2544's benchmarking range: labels only, nothing is sent), and a
/// counter state of a week at 1 Hz with RTTs of a few ms and some loss.
std::vector<ex::target_metrics> fleet(const ex::continuous_metrics& m, std::size_t n) {
    std::mt19937_64 rng(12);
    std::lognormal_distribution<double> rtt_ms(1.0, 0.6);
    std::vector<ex::target_metrics> targets;
    targets.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        ex::target_spec s;
        s.ip = icmpengine::ip_address::from_v4(0xc6120000u + static_cast<std::uint32_t>(i));
        s.host = "host-" + std::to_string(i) + ".dc" + std::to_string(i % 7) + ".example.net";
        s.labels = {{"site", "dc" + std::to_string(i % 7)}};
        ex::target_metrics t = m.make_target(s);
        // A sample of RTTs spread over the buckets as a week would be.
        for (int k = 0; k < 64; ++k)
            m.observe_reply(
                t, std::chrono::nanoseconds(static_cast<std::int64_t>(rtt_ms(rng) * 1e6)), 57);
        const std::uint64_t week = 604'800;
        for (std::size_t b = 0; b <= default_buckets.size(); ++b)
            t.buckets[b] *= week / 64;
        t.received = week / 64 * 64;
        t.rtt_sum_seconds *= static_cast<double>(week / 64);
        t.sent = week;
        t.timeouts = week - t.received - 1;
        t.in_flight = 1;
        t.late_replies = i % 3;
        t.duplicates = i % 5;
        targets.push_back(std::move(t));
    }
    return targets;
}

void render_page(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const ex::continuous_metrics m(default_buckets);
    const std::vector<ex::target_metrics> targets = fleet(m, n);
    std::vector<const ex::target_metrics*> order;
    for (const ex::target_metrics& t : targets)
        order.push_back(&t);
    icmpengine::engine_stats stats;
    stats.sent = 604'800 * n;
    const std::string engine_labels = ex::engine_label_set("", 0);
    const ex::engine_metrics_row rows[] = {{engine_labels, stats}};
    std::size_t bytes = 0;
    for (auto _ : state) {
        ex::exposition page;
        m.render_targets(page, order);
        ex::render_prober_metrics(page, rows, 0, n);
        const std::string text = page.text();
        bytes = text.size();
        benchmark::DoNotOptimize(text.data());
    }
    // CPU seconds per target (shown with SI prefixes: 500n = 500 ns).
    state.counters["s_per_target"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                       benchmark::Counter::kInvert);
    state.counters["page_MB"] = static_cast<double>(bytes) / 1e6;
}

// The page as /metrics streams it (metrics_stream.cpp): family by family,
// batches of targets into one chunk that is reused (cleared, capacity
// kept) each time it reaches metrics_stream::chunk_bytes, as the HTTP
// connection does once it has written it. Same counters as render_page.
void render_page_streamed(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const ex::continuous_metrics m(default_buckets);
    const std::vector<ex::target_metrics> targets = fleet(m, n);
    std::vector<const ex::target_metrics*> order;
    for (const ex::target_metrics& t : targets)
        order.push_back(&t);
    ex::prober_totals totals;
    totals.targets = n;
    totals.engines.push_back({ex::engine_label_set("", 0), {}});
    totals.engines.back().second.sent = 604'800 * n;
    std::string chunk;
    std::size_t bytes = 0;
    std::size_t chunks = 0;
    auto send = [&] {
        bytes += chunk.size();
        ++chunks;
        benchmark::DoNotOptimize(chunk.data());
        chunk.clear();
    };
    const std::span<const ex::target_metrics* const> all = order;
    for (auto _ : state) {
        bytes = chunks = 0;
        for (std::size_t f = 0; f < ex::continuous_metrics::family_count(); ++f) {
            const ex::family_info info = ex::continuous_metrics::family(f);
            ex::append_family_head(chunk, info.name, info.kind, info.help);
            std::size_t per_target = 0;
            for (std::size_t first = 0; first < n;) {
                const std::size_t budget = ex::metrics_stream::chunk_bytes -
                                           std::min(chunk.size(), ex::metrics_stream::chunk_bytes);
                const std::size_t count = std::min(
                    n - first, per_target == 0
                                   ? 32
                                   : std::clamp<std::size_t>(budget / per_target + 1, 16,
                                                             ex::metrics_stream::max_batch));
                const std::size_t before = chunk.size();
                m.render_rows(chunk, f, all.subspan(first, count));
                per_target = std::max<std::size_t>(1, (chunk.size() - before) / count);
                first += count;
                if (chunk.size() >= ex::metrics_stream::chunk_bytes)
                    send();
            }
        }
        ex::exposition tail;
        ex::render_prober_totals(tail, totals);
        tail.write(chunk);
        send();
    }
    state.counters["s_per_target"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                       benchmark::Counter::kInvert);
    state.counters["page_MB"] = static_cast<double>(bytes) / 1e6;
    state.counters["chunks"] = static_cast<double>(chunks);
    state.counters["chunk_cap_KB"] = static_cast<double>(chunk.capacity()) / 1e3;
}

// The real metrics_stream over a real continuous_prober (its engines are
// never run: nothing is sent, every counter is 0, so the numbers are
// shorter than render_page's): the coroutine and batching included.
void stream_prober(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    boost::asio::io_context idle{1};
    boost::asio::io_context here{1};
    ex::continuous_options options;
    options.buckets = default_buckets;
    options.history_bins = 0;
    ex::continuous_prober prober(idle.get_executor(), options);
    std::vector<ex::target_spec> specs;
    for (std::size_t i = 0; i < n; ++i) {
        ex::target_spec s;
        s.ip = icmpengine::ip_address::from_v4(0xc6120000u + static_cast<std::uint32_t>(i));
        s.host = "host-" + std::to_string(i) + ".dc" + std::to_string(i % 7) + ".example.net";
        s.labels = {{"site", "dc" + std::to_string(i % 7)}};
        s.interval = std::chrono::hours(1);
        specs.push_back(std::move(s));
    }
    prober.set_targets(std::move(specs));
    std::string chunk;
    std::size_t bytes = 0;
    for (auto _ : state) {
        ex::metrics_stream stream({{{}, [&]() -> const ex::continuous_prober* { return &prober; }}},
                                  {});
        bytes = 0;
        boost::asio::co_spawn(
            here,
            [&]() -> boost::asio::awaitable<void> {
                for (bool more = true; more;) {
                    chunk.clear();
                    more = co_await stream.next(chunk);
                    bytes += chunk.size();
                    benchmark::DoNotOptimize(chunk.data());
                }
            },
            boost::asio::detached);
        here.restart();
        here.run();
    }
    state.counters["s_per_target"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                       benchmark::Counter::kInvert);
    state.counters["page_MB"] = static_cast<double>(bytes) / 1e6;
}

} // namespace

BENCHMARK(render_page)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK(render_page_streamed)
    ->Arg(1'000)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(stream_prober)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
