// SPDX-License-Identifier: MIT
// Microbenchmarks for detail::basic_deadline_heap at arity 2, 4 and 8: the
// figures behind the choice of `deadline_heap` in lib/deadline_heap.hpp.
//
// Operations, each the engine's use of the heap:
//   push:   push N (id, deadline) pairs into an empty heap (one per ping sent)
//   erase:  erase all N members in random order (the reply path)
//   pop:    pop all N (the expiry path)
//   mix:    steady state at N in flight: a reply erases a random member and
//           its slot is re-pushed with a fresh deadline (the next ping)
// Deadline distributions:
//   uniform: the ping's timeout is uniform within 1 s
//   mixed:   timeouts log-uniform from 10 us to 3 h (mixed callers)
// items_per_second counts heap operations (a mix step is two: erase + push).
//
// push, erase and pop time whole passes with manual timing, so the untimed
// refill between passes costs nothing (state.PauseTiming per pass is slow
// next to a 1,000-entry pass); mix needs no refill and uses the default CPU
// timer. Inputs are generated once per (N, dist) and shared by all arities,
// so every arity sees the same data.
//
// On a shared machine, interleave and repeat so that load hits every arity
// alike, and read the medians:
//   bench_deadline_heap --benchmark_repetitions=5
//       --benchmark_enable_random_interleaving=true
//       --benchmark_report_aggregates_only=true
#include "deadline_heap.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <time.h>

namespace {

using icmpengine::detail::basic_deadline_heap;

enum class distribution { uniform, mixed };

const char* name_of(distribution d) {
    return d == distribution::uniform ? "uniform" : "mixed";
}

/// A timeout in nanoseconds drawn from `d`.
std::int64_t random_timeout(distribution d, std::mt19937_64& rng) {
    if (d == distribution::uniform) {
        return std::uniform_int_distribution<std::int64_t>(0, 1'000'000'000 - 1)(rng);
    }
    // Log-uniform over [10 us, 3 h].
    constexpr double lo = 10e3;
    constexpr double hi = 3.0 * 3600 * 1e9;
    const double u = std::uniform_real_distribution<double>(std::log(lo), std::log(hi))(rng);
    return static_cast<std::int64_t>(std::exp(u));
}

/// Pre-generated inputs for one (N, distribution).
struct inputs {
    std::vector<std::int64_t> deadlines;    // deadlines[id] for the initial fill
    std::vector<std::uint32_t> erase_order; // a random permutation of the ids
    // The mix: step k erases mix_ids[k] and re-pushes it at
    // now + mix_timeouts[k], where now advances by mix_tick per step.
    std::vector<std::uint32_t> mix_ids;
    std::vector<std::int64_t> mix_timeouts;
};

constexpr std::size_t mix_steps = 1 << 16;
// 1 us between replies: the engine's clock moves on while pings are in flight.
constexpr std::int64_t mix_tick = 1'000;

const inputs& inputs_for(std::size_t n, distribution d) {
    static std::map<std::pair<std::size_t, distribution>, std::unique_ptr<inputs>> cache;
    auto& slot = cache[{n, d}];
    if (!slot) {
        slot = std::make_unique<inputs>();
        std::mt19937_64 rng(0x5eed'0000 + n * 2 + static_cast<std::size_t>(d));
        slot->deadlines.resize(n);
        for (auto& deadline : slot->deadlines) {
            deadline = random_timeout(d, rng);
        }
        slot->erase_order.resize(n);
        std::iota(slot->erase_order.begin(), slot->erase_order.end(), std::uint32_t{0});
        std::shuffle(slot->erase_order.begin(), slot->erase_order.end(), rng);
        slot->mix_ids.resize(mix_steps);
        slot->mix_timeouts.resize(mix_steps);
        for (std::size_t k = 0; k < mix_steps; ++k) {
            slot->mix_ids[k] = static_cast<std::uint32_t>(rng() % n);
            slot->mix_timeouts[k] = random_timeout(d, rng);
        }
    }
    return *slot;
}

template <unsigned Arity>
void fill(basic_deadline_heap<Arity>& heap, const inputs& in) {
    for (std::uint32_t id = 0; id < in.deadlines.size(); ++id) {
        heap.push(id, in.deadlines[id]);
    }
}

/// Times one pass for SetIterationTime. The machine is shared, so wall time
/// of a long pass includes whatever ran in between: passes of 10,000 ops or
/// more (>= ~50 us) are timed in thread CPU time, which the scheduler does not
/// charge for preemption. That clock is a syscall (~0.5 us here), too coarse
/// for a 1,000-op pass of a few microseconds, which is also too short to be
/// preempted often: those use steady_clock (vDSO, ~20 ns).
class pass_timer {
  public:
    explicit pass_timer(std::size_t ops) : m_cpu(ops >= 10'000) {}
    void start() noexcept { m_start = now(); }
    double seconds() const noexcept { return now() - m_start; }

  private:
    double now() const noexcept {
        if (m_cpu) {
            timespec ts{};
            ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
            return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
        }
        return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }

    bool m_cpu;
    double m_start = 0;
};

template <unsigned Arity>
void bm_push(benchmark::State& state, distribution d) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const inputs& in = inputs_for(n, d);
    basic_deadline_heap<Arity> heap;
    heap.reserve(n);
    pass_timer timer(n);
    for (auto _ : state) {
        heap.clear();
        timer.start();
        fill(heap, in);
        state.SetIterationTime(timer.seconds());
        benchmark::DoNotOptimize(heap.top());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

template <unsigned Arity>
void bm_erase(benchmark::State& state, distribution d) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const inputs& in = inputs_for(n, d);
    basic_deadline_heap<Arity> heap;
    heap.reserve(n);
    pass_timer timer(n);
    for (auto _ : state) {
        fill(heap, in);
        timer.start();
        for (const std::uint32_t id : in.erase_order) {
            benchmark::DoNotOptimize(heap.erase(id));
        }
        state.SetIterationTime(timer.seconds());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

template <unsigned Arity>
void bm_pop(benchmark::State& state, distribution d) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const inputs& in = inputs_for(n, d);
    basic_deadline_heap<Arity> heap;
    heap.reserve(n);
    pass_timer timer(n);
    for (auto _ : state) {
        fill(heap, in);
        timer.start();
        while (!heap.empty()) {
            benchmark::DoNotOptimize(heap.pop());
        }
        state.SetIterationTime(timer.seconds());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

template <unsigned Arity>
void bm_mix(benchmark::State& state, distribution d) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const inputs& in = inputs_for(n, d);
    basic_deadline_heap<Arity> heap;
    heap.reserve(n);
    fill(heap, in); // all N slots in flight; every step keeps it that way
    std::int64_t now = 0;
    for (auto _ : state) {
        for (std::size_t k = 0; k < mix_steps; ++k) {
            const std::uint32_t id = in.mix_ids[k];
            benchmark::DoNotOptimize(heap.erase(id));
            heap.push(id, now + in.mix_timeouts[k]);
            now += mix_tick;
        }
        benchmark::DoNotOptimize(heap.top());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * mix_steps * 2));
}

template <unsigned Arity>
void register_arity() {
    using bench_fn = void (*)(benchmark::State&, distribution);
    const std::pair<const char*, bench_fn> ops[] = {
        {"push", bm_push<Arity>},
        {"erase", bm_erase<Arity>},
        {"pop", bm_pop<Arity>},
        {"mix", bm_mix<Arity>},
    };
    for (const auto& [op, fn] : ops) {
        for (const distribution d : {distribution::uniform, distribution::mixed}) {
            const std::string name =
                std::string(op) + "/arity:" + std::to_string(Arity) + "/" + name_of(d);
            auto* b = benchmark::RegisterBenchmark(name.c_str(), fn, d);
            b->Arg(1'000)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMicrosecond);
            if (fn != bm_mix<Arity>) {
                b->UseManualTime();
            }
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    register_arity<2>();
    register_arity<4>();
    register_arity<8>();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
