// SPDX-License-Identifier: MIT
// bench_asio: what icmpengine/asio.hpp and remote_engine cost (bench/README.md,
// "Asio and remote pings"). It moves itself into a private network namespace
// first (exits 77 if it cannot) and pings only loopback there.
//
//   W1 three ways, interleaved in each repetition: 60,000 targets
//   (127.1.0.1 upward) once each, 1 s timeout, 256 in flight:
//     run      engine::run(ping_all(...)), the engine's own loop
//     driver   the same ping_all spawned on the engine and driven by an
//              asio_driver from an io_context (mode (a)): Asio's epoll loop
//              waiting on the engine's descriptor, poll() when readable
//     async    256 Asio coroutines co_awaiting async_ping(engine&, ...) on
//              that driven engine, taking the next target each time
//   remote   the same 60,000 pings through async_ping on the remote handle
//            from an asio::thread_pool of 1, 2 and 8 threads (256 chains of
//            callbacks, each starting its next ping from the pool), the
//            engine on its own thread (an asio_driver on its own io_context)
//   latency  one ping at a time to 127.0.0.1, 2,000 times: a coroutine in
//            engine::run (local) against a thread that waits for each
//            result of async_ping(remote_engine, ...), the engine blocked
//            in run() (remote); p50 and p99 of submit-to-result
//
//     bench_asio [--reps N] [--smoke]
#include "private_netns.hpp"

#include <icmpengine/asio.hpp>
#include <icmpengine/icmpengine.hpp>

#include <asio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t window = 256;

struct outcome {
    double ms = 0;
    std::size_t replies = 0;
};

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

/// As bench/workload.cpp's config_from for W1: DF set, 512-byte receive
/// buffers, no more slots than the window.
icmpengine::engine_config bench_config() {
    icmpengine::engine_config c;
    c.dont_fragment = true;
    c.max_in_flight = window;
    c.receive_buffer_size = 512;
    return c;
}

/// An engine with its IPv4 socket open (not part of any timing).
std::unique_ptr<engine> open_engine() {
    auto eng = std::make_unique<engine>(bench_config());
    if (const std::error_code ec = eng->open(icmpengine::ip_family::v4))
        throw std::runtime_error("opening the ICMP socket: " + ec.message());
    return eng;
}

std::size_t replies_in(const std::vector<ping_result>& results) {
    return static_cast<std::size_t>(std::count_if(
        results.begin(), results.end(), [](auto& r) { return r.status == ping_status::reply; }));
}

outcome w1_run(const std::vector<ip_address>& list) {
    const auto eng = open_engine();
    std::vector<ping_result> results(list.size());
    const auto t0 = clock_type::now();
    eng->run(icmpengine::ping_all(*eng, list, results, {.timeout = 1s, .window = window}));
    return {ms_since(t0), replies_in(results)};
}

icmpengine::task<void> then(icmpengine::task<void> t, std::function<void()> done) {
    co_await std::move(t);
    done();
}

outcome w1_driver(const std::vector<ip_address>& list) {
    const auto eng = open_engine();
    asio::io_context ctx(1);
    std::optional<icmpengine::asio_driver> driver(std::in_place, ctx.get_executor(), *eng);
    std::vector<ping_result> results(list.size());
    const auto t0 = clock_type::now();
    eng->spawn(then(icmpengine::ping_all(*eng, list, results, {.timeout = 1s, .window = window}),
                    [&] { driver.reset(); }));
    ctx.run();
    return {ms_since(t0), replies_in(results)};
}

outcome w1_async(const std::vector<ip_address>& list) {
    const auto eng = open_engine();
    asio::io_context ctx(1);
    std::optional<icmpengine::asio_driver> driver(std::in_place, ctx.get_executor(), *eng);
    std::size_t next = 0;
    std::size_t replies = 0;
    std::uint32_t finished = 0;
    auto worker = [&]() -> asio::awaitable<void> {
        while (next < list.size()) {
            const ping_result r =
                co_await icmpengine::async_ping(*eng, list[next++], 1s, asio::use_awaitable);
            replies += r.status == ping_status::reply ? 1 : 0;
        }
    };
    const auto t0 = clock_type::now();
    for (std::uint32_t w = 0; w < window; ++w)
        asio::co_spawn(ctx, worker(), [&](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
            if (++finished == window)
                driver.reset();
        });
    ctx.run();
    return {ms_since(t0), replies};
}

/// 256 chains of remote pings, each starting its next ping from the pool.
struct remote_chains {
    const std::vector<ip_address>& list;
    icmpengine::remote_engine remote;
    asio::thread_pool& pool;
    std::atomic<std::size_t> next{0};
    std::atomic<std::size_t> replies{0};
    std::atomic<std::uint32_t> chains_done{0};
    std::promise<void> all_done{};

    void start() {
        const std::size_t i = next++;
        if (i >= list.size()) {
            if (++chains_done == window)
                all_done.set_value();
            return;
        }
        icmpengine::async_ping(remote, list[i], 1s,
                               asio::bind_executor(pool, [this](const ping_result& r) {
                                   if (r.status == ping_status::reply)
                                       ++replies;
                                   start();
                               }));
    }
};

/// Suspends run()'s task until remote work resumes it.
struct gate {
    std::coroutine_handle<>& waiter;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept { waiter = h; }
    void await_resume() const noexcept {}
};

icmpengine::task<void> wait_at(gate g) {
    co_await g;
}

/// How the engine's own thread drives it.
enum class drive { run, driver };

/// An engine on a thread of its own from its creation (its ring is
/// single-issuer, IORING_SETUP_SINGLE_ISSUER: bound to that thread), driven
/// by engine::run() or by an asio_driver on an io_context; remote() is its
/// handle. The destructor stops it.
class engine_thread {
  public:
    explicit engine_thread(drive how) : m_how(how) {
        std::promise<icmpengine::remote_engine> handle;
        m_thread = std::thread([this, &handle] {
            const auto eng = open_engine();
            if (m_how == drive::run) {
                handle.set_value(eng->remote());
                eng->run(wait_at(gate{m_waiter}));
            } else {
                icmpengine::asio_driver driver(m_ctx.get_executor(), *eng);
                handle.set_value(eng->remote());
                m_ctx.run(); // until m_ctx.stop()
            }
        });
        m_remote = handle.get_future().get();
    }
    ~engine_thread() {
        if (m_how == drive::run)
            (void)m_remote.post([this](engine&) { m_waiter.resume(); });
        else
            m_ctx.stop();
        m_thread.join();
    }
    engine_thread(const engine_thread&) = delete;
    engine_thread& operator=(const engine_thread&) = delete;

    const icmpengine::remote_engine& remote() const noexcept { return m_remote; }

  private:
    drive m_how;
    asio::io_context m_ctx{1};
    std::coroutine_handle<> m_waiter;
    icmpengine::remote_engine m_remote;
    std::thread m_thread;
};

/// async_ping(remote_engine, ...) from an asio::thread_pool of `threads`.
outcome remote_run(const std::vector<ip_address>& list, int threads, drive how) {
    const engine_thread engine(how);
    asio::thread_pool pool(static_cast<std::size_t>(threads));
    remote_chains chains{list, engine.remote(), pool};
    std::future<void> done = chains.all_done.get_future();
    const auto t0 = clock_type::now();
    for (std::uint32_t c = 0; c < window; ++c)
        asio::post(pool, [&] { chains.start(); });
    done.wait();
    const double ms = ms_since(t0);
    pool.join();
    return {ms, chains.replies.load()};
}

/// remote_engine::ping from `threads` plain threads, each sending its share
/// of the list with at most window / threads of its own in flight; the
/// results (on the engine's thread) only count and wake the sender.
outcome remote_ping_run(const std::vector<ip_address>& list, int threads, drive how) {
    const engine_thread engine(how);
    const icmpengine::remote_engine& remote = engine.remote();
    const int cap = static_cast<int>(window) / threads;
    std::vector<std::atomic<int>> in_flight(static_cast<std::size_t>(threads));
    std::atomic<std::size_t> replies{0};
    const auto t0 = clock_type::now();
    std::vector<std::thread> senders;
    for (int t = 0; t < threads; ++t)
        senders.emplace_back([&, t] {
            std::atomic<int>& mine = in_flight[static_cast<std::size_t>(t)];
            for (std::size_t i = static_cast<std::size_t>(t); i < list.size();
                 i += static_cast<std::size_t>(threads)) {
                for (int now = mine.load(); now >= cap; now = mine.load())
                    mine.wait(now);
                ++mine;
                (void)remote.ping(list[i], 1s, [&](const ping_result& r) {
                    replies += r.status == ping_status::reply ? 1 : 0;
                    --mine;
                    mine.notify_one();
                });
            }
            for (int now = mine.load(); now > 0; now = mine.load())
                mine.wait(now);
        });
    for (std::thread& s : senders)
        s.join();
    return {ms_since(t0), replies.load()};
}

struct latency {
    double p50_us = 0;
    double p99_us = 0;
};

latency percentiles(std::vector<double> us) {
    std::sort(us.begin(), us.end());
    return {us[us.size() / 2], us[us.size() * 99 / 100]};
}

latency local_latency(int n) {
    const auto eng = open_engine();
    std::vector<double> us;
    auto loop = [&]() -> icmpengine::task<void> {
        for (int i = 0; i < n; ++i) {
            const auto t0 = clock_type::now();
            const ping_result r = co_await eng->ping(ip_address::parse("127.0.0.1"), 1s);
            if (r.status != ping_status::reply)
                throw std::runtime_error("local latency: no reply");
            us.push_back(ms_since(t0) * 1e3);
        }
    };
    eng->run(loop());
    return percentiles(std::move(us));
}

latency remote_latency(int n) {
    const auto eng = open_engine();
    const icmpengine::remote_engine remote = eng->remote();
    std::coroutine_handle<> waiter;
    std::vector<double> us;
    std::atomic<int> results{0};
    std::thread submitter([&] {
        for (int i = 0; i < n; ++i) {
            const auto t0 = clock_type::now();
            icmpengine::async_ping(remote, ip_address::parse("127.0.0.1"), 1s,
                                   [&](const ping_result&) { // on the engine's thread
                                       ++results;
                                       results.notify_one();
                                   });
            while (results.load() == i)
                results.wait(i);
            us.push_back(ms_since(t0) * 1e3);
        }
        (void)remote.post([&](engine&) { waiter.resume(); });
    });
    eng->run(wait_at(gate{waiter}));
    submitter.join();
    return percentiles(std::move(us));
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void check(const outcome& o, std::size_t expected, const char* what) {
    if (o.replies != expected)
        throw std::runtime_error(std::string(what) + ": " + std::to_string(o.replies) + " of " +
                                 std::to_string(expected) + " replies");
}

void run_w1(const std::vector<ip_address>& list, int reps) {
    std::vector<double> run_ms, driver_ms, async_ms;
    for (int r = 0; r < reps; ++r) {
        // Each repetition in another order, so that no variant always
        // follows the same one.
        outcome a, b, c;
        for (int k = 0; k < 3; ++k) {
            const int which = (k + r) % 3;
            (which == 0   ? a
             : which == 1 ? b
                          : c) = which == 0   ? w1_run(list)
                                 : which == 1 ? w1_driver(list)
                                              : w1_async(list);
        }
        check(a, list.size(), "W1 run");
        check(b, list.size(), "W1 driver");
        check(c, list.size(), "W1 async");
        std::printf("W1 rep %d: run %.1f ms, driver %.1f ms (%.3fx), async_ping %.1f ms (%.3fx)\n",
                    r + 1, a.ms, b.ms, b.ms / a.ms, c.ms, c.ms / a.ms);
        run_ms.push_back(a.ms);
        driver_ms.push_back(b.ms / a.ms);
        async_ms.push_back(c.ms / a.ms);
    }
    std::printf("W1 medians: run %.1f ms; driver %.3fx run; async_ping %.3fx run\n", median(run_ms),
                median(driver_ms), median(async_ms));
}

void run_remote(const std::vector<ip_address>& list, int reps) {
    const auto rate = [&](const outcome& o) {
        check(o, list.size(), "remote");
        return static_cast<double>(list.size()) / (o.ms / 1e3);
    };
    for (const drive how : {drive::run, drive::driver})
        for (const int threads : {1, 2, 8}) {
            std::vector<double> direct, pooled;
            for (int r = 0; r < reps; ++r) {
                direct.push_back(rate(remote_ping_run(list, threads, how)));
                pooled.push_back(rate(remote_run(list, threads, how)));
            }
            std::printf("remote, engine in %s, %d submitting thread%s: remote_engine::ping "
                        "%.0f pings/s, async_ping from an asio::thread_pool %.0f pings/s "
                        "(medians of %d)\n",
                        how == drive::run ? "engine::run()" : "an asio_driver", threads,
                        threads == 1 ? "" : "s", median(direct), median(pooled), reps);
        }
}

void run_latency(int n, int reps) {
    std::vector<double> local50, local99, remote50, remote99;
    for (int r = 0; r < reps; ++r) {
        const latency l = local_latency(n);
        const latency m = remote_latency(n);
        local50.push_back(l.p50_us);
        local99.push_back(l.p99_us);
        remote50.push_back(m.p50_us);
        remote99.push_back(m.p99_us);
    }
    std::printf("latency, one ping at a time: local p50 %.1f us p99 %.1f us; remote p50 %.1f us "
                "p99 %.1f us; a remote ping adds %.1f us (p50)\n",
                median(local50), median(local99), median(remote50), median(remote99),
                median(remote50) - median(local50));
}

} // namespace

int main(int argc, char** argv) try {
    if (const std::string why = icmpengine::bench::enter_private_netns(); !why.empty())
        icmpengine::bench::exit_without_netns(argv[0], why);
    int reps = 5;
    bool smoke = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = std::max(1, std::atoi(argv[++i]));
        else if (std::strcmp(argv[i], "--smoke") == 0)
            smoke = true;
        else
            throw std::invalid_argument(std::string("usage: bench_asio [--reps N] [--smoke]"));
    }
    const std::uint32_t count = smoke ? 2000 : 60'000;
    if (smoke)
        reps = 1;
    std::vector<ip_address> list;
    for (std::uint32_t i = 0; i < count; ++i)
        list.push_back(ip_address::from_v4(0x7f010001u + i));
    run_w1(list, reps);
    run_remote(list, reps);
    run_latency(smoke ? 100 : 2000, reps);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "bench_asio: %s\n", e.what());
    return 1;
}
