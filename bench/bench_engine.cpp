// SPDX-License-Identifier: MIT
// Engine benchmarks on loopback, inside a private network namespace this
// program creates first (main() below): nothing is sent anywhere else, and
// without the privilege to create one the program says so and exits 77.
//
//   round_trip     one ping at a time: the latency of engine + kernel
//   ping_all       60,000 distinct targets (127.1.x.y) by window and DF
//   send_batch     the same by engine_config::send_batch: fewer io_uring_enter
//                  calls against the RTT over-estimate of batching (every
//                  request of a batch is stamped before the one enter); the
//                  rtt_us counter is the mean RTT reported
//   pool           the same fan-out over engine_pool's engines
//
// items_per_second is pings per second.
#include "private_netns.hpp"

#include <icmpengine/icmpengine.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::engine_config;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;

namespace {

constexpr std::size_t fleet_size = 60'000;

std::vector<ip_address> fleet() {
    std::vector<ip_address> targets;
    targets.reserve(fleet_size);
    for (std::uint32_t i = 0; i < fleet_size; ++i)
        targets.push_back(ip_address::from_v4(0x7f010001u + i));
    return targets;
}

/// Adds up the replies of one fan-out and their RTTs.
void account(const std::vector<ping_result>& results, std::int64_t& replies, double& rtt_sum) {
    for (const ping_result& r : results) {
        if (r.status == ping_status::reply) {
            ++replies;
            rtt_sum += std::chrono::duration<double, std::micro>(r.rtt).count();
        }
    }
}

void BM_round_trip(benchmark::State& state) {
    engine eng;
    const ip_address target = ip_address::parse(state.range(0) == 4 ? "127.0.0.1" : "::1");
    if (eng.open(target.family())) {
        state.SkipWithError("the ICMP socket cannot be opened");
        return;
    }
    double rtt_sum = 0;
    for (auto _ : state) {
        const ping_result r = eng.run(eng.ping(target, 1s));
        if (r.status != ping_status::reply) {
            state.SkipWithError("a loopback ping got no reply");
            break;
        }
        rtt_sum += std::chrono::duration<double, std::micro>(r.rtt).count();
    }
    state.counters["rtt_us"] = benchmark::Counter(rtt_sum, benchmark::Counter::kAvgIterations);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_round_trip)->ArgName("v")->Arg(4)->Arg(6)->UseRealTime();

/// One fan-out of `fleet_size` pings per iteration on one engine.
void run_fleet(benchmark::State& state, engine_config config, std::uint32_t window) {
    engine eng(std::move(config));
    if (eng.open(icmpengine::ip_family::v4)) {
        state.SkipWithError("the ICMP socket cannot be opened");
        return;
    }
    const std::vector<ip_address> targets = fleet();
    std::vector<ping_result> results(targets.size());
    std::int64_t replies = 0;
    double rtt_sum = 0;
    for (auto _ : state) {
        eng.run(icmpengine::ping_all(eng, targets, results, {.timeout = 1s, .window = window}));
        state.PauseTiming();
        account(results, replies, rtt_sum);
        state.ResumeTiming();
    }
    const auto pings = static_cast<double>(state.iterations()) * fleet_size;
    state.counters["rtt_us"] = benchmark::Counter(replies > 0 ? rtt_sum / replies : 0);
    state.counters["lost"] = benchmark::Counter(pings - static_cast<double>(replies));
    state.counters["enters_per_ping"] =
        benchmark::Counter(static_cast<double>(eng.stats().submissions) / pings);
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(fleet_size));
}

void BM_ping_all(benchmark::State& state) {
    run_fleet(state, {.dont_fragment = state.range(1) != 0},
              static_cast<std::uint32_t>(state.range(0)));
}
BENCHMARK(BM_ping_all)
    ->ArgNames({"window", "df"})
    ->Args({16, 1})
    ->Args({64, 1})
    ->Args({256, 1})
    ->Args({1024, 1})
    ->Args({4096, 1})
    ->Args({65536, 1})
    ->Args({256, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_send_batch(benchmark::State& state) {
    run_fleet(state,
              {.send_batch = static_cast<std::uint32_t>(state.range(0)), .dont_fragment = true},
              256);
}
BENCHMARK(BM_send_batch)
    ->ArgName("batch")
    ->Arg(8)
    ->Arg(16)
    ->Arg(32)
    ->Arg(64)
    ->Arg(128)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_pool(benchmark::State& state) {
    icmpengine::engine_pool pool(
        {.engines = static_cast<unsigned>(state.range(0)), .engine = {.dont_fragment = true}});
    if (pool.open(icmpengine::ip_family::v4)) {
        state.SkipWithError("the ICMP sockets cannot be opened");
        return;
    }
    const std::vector<ip_address> targets = fleet();
    std::vector<ping_result> results(targets.size());
    std::int64_t replies = 0;
    double rtt_sum = 0;
    for (auto _ : state) {
        pool.ping_all(targets, results, {.timeout = 1s});
        state.PauseTiming();
        account(results, replies, rtt_sum);
        state.ResumeTiming();
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(fleet_size));
}
BENCHMARK(BM_pool)
    ->ArgName("engines")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

} // namespace

int main(int argc, char** argv) {
    // Before anything starts a thread: unshare(CLONE_NEWNET) wants a
    // single-threaded process.
    if (const std::string why = icmpengine::bench::enter_private_netns(); !why.empty())
        icmpengine::bench::exit_without_netns(argv[0], why);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
