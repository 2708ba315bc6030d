// SPDX-License-Identifier: MIT
// System tests of icmpengine/asio.hpp with the engine on its own thread
// (mode (b)): an asio::thread_pool calls async_ping on the engine's remote
// handle. The engine's thread here is the test's main thread, its engine
// driven by an asio_driver on an io_context of its own. Run under TSan by
// scripts/test.sh. Every ping goes to loopback in the test's private
// namespace or to 198.18.99.0/24, routed into `lo` where nobody answers.
#include <catch2/catch.hpp>

#include "asio_test.hpp"

#include <icmpengine/asio.hpp>
#include <icmpengine/icmpengine.hpp>

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using icmpengine::asio_driver;
using icmpengine::async_ping;
using icmpengine::engine;
using icmpengine::engine_stats;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;
using icmpengine::remote_engine;
using icmpengine::testing::require_balanced;
using icmpengine::testing::silent_target;
using icmpengine::testing::watchdog;

TEST_CASE("remote async_ping from 8 pool threads x 10,000 into one engine", "[asio][remote]") {
    constexpr int threads = 8;
    constexpr int per_thread = 10'000;
    constexpr int total = threads * per_thread;
    asio::io_context engine_ctx(1);
    engine eng;
    std::optional<asio_driver> driver(std::in_place, engine_ctx.get_executor(), eng);
    const remote_engine remote = eng.remote();
    std::atomic<int> results{0};
    std::vector<std::atomic<int>> replies(threads);
    std::vector<std::atomic<int>> others(threads);
    std::atomic<int> off_pool{0};
    asio::thread_pool pool(threads);
    for (int t = 0; t < threads; ++t)
        asio::post(pool, [&, t] {
            const ip_address target =
                ip_address::from_v4(0x7f050001u + static_cast<std::uint32_t>(t));
            for (int i = 0; i < per_thread; ++i)
                async_ping(remote, target, 10s,
                           asio::bind_executor(pool, [&, t, target](ping_result r) {
                               if (!pool.get_executor().running_in_this_thread())
                                   ++off_pool;
                               ++(r.status == ping_status::reply && r.from == target ? replies
                                                                                     : others)[t];
                               if (++results == total)
                                   engine_ctx.stop();
                           }));
        });
    watchdog dog(engine_ctx, [&] { return static_cast<std::uint64_t>(results.load()); });
    engine_ctx.run();
    pool.join();
    REQUIRE_FALSE(dog.fired());
    REQUIRE(results == total);
    REQUIRE(off_pool == 0);
    for (int t = 0; t < threads; ++t) {
        INFO("thread " << t);
        REQUIRE(replies[t] == per_thread);
        REQUIRE(others[t] == 0);
    }
    const engine_stats s = eng.stats();
    REQUIRE(s.sent == static_cast<std::uint64_t>(total));
    REQUIRE(s.replies == static_cast<std::uint64_t>(total));
    require_balanced(s);
}

TEST_CASE("remote pings in small windows: every post wakes the engine", "[asio][remote]") {
    // Each chain starts its next ping from the pool when the last one is
    // answered, so the engine often runs dry and sleeps: only the remote
    // queue's wake-up brings the next ping in. The pings' timeouts are an
    // hour, so no timer wakes the engine instead: a lost wake-up stalls the
    // chains, and the watchdog fails the test after 20 s without progress.
    constexpr int chains = 256;
    constexpr int per_chain = 100;
    asio::io_context engine_ctx(1);
    engine eng;
    std::optional<asio_driver> driver(std::in_place, engine_ctx.get_executor(), eng);
    const remote_engine remote = eng.remote();
    std::atomic<int> replies{0};
    std::atomic<int> results{0};
    asio::thread_pool pool(2);
    std::function<void(int, int)> next = [&](int chain, int left) {
        if (left == 0)
            return;
        const ip_address target =
            ip_address::from_v4(0x7f070001u + static_cast<std::uint32_t>(chain * per_chain + left));
        async_ping(remote, target, 1h,
                   asio::bind_executor(pool, [&, chain, left, target](ping_result r) {
                       replies += r.status == ping_status::reply && r.from == target ? 1 : 0;
                       if (++results == chains * per_chain)
                           engine_ctx.stop();
                       next(chain, left - 1);
                   }));
    };
    for (int c = 0; c < chains; ++c)
        asio::post(pool, [&, c] { next(c, per_chain); });
    watchdog dog(engine_ctx, [&] { return static_cast<std::uint64_t>(results.load()); });
    engine_ctx.run();
    pool.join();
    INFO(results.load() << " of " << chains * per_chain << " results");
    REQUIRE_FALSE(dog.fired());
    REQUIRE(replies == chains * per_chain);
    require_balanced(eng.stats());
}

// The same chains into an engine blocked in engine::run() (io_uring_enter):
// every post must wake it. (This stalled in 2 of 3 runs while turn() could
// block after a mid-burst reap had consumed the wake-up completion.)
TEST_CASE("remote pings in small windows into engine::run(): every post wakes it",
          "[asio][remote][remote-run]") {
    constexpr int chains = 256;
    constexpr int per_chain = 100;
    engine eng;
    const remote_engine remote = eng.remote();
    std::atomic<int> replies{0};
    std::atomic<int> results{0};
    std::coroutine_handle<> waiter;
    asio::thread_pool pool(2);
    std::function<void(int, int)> next = [&](int chain, int left) {
        if (left == 0)
            return;
        const ip_address target =
            ip_address::from_v4(0x7f080001u + static_cast<std::uint32_t>(chain * per_chain + left));
        async_ping(remote, target, 1h,
                   asio::bind_executor(pool, [&, chain, left, target](ping_result r) {
                       replies += r.status == ping_status::reply && r.from == target ? 1 : 0;
                       if (++results == chains * per_chain)
                           (void)remote.post([&](engine&) { waiter.resume(); });
                       next(chain, left - 1);
                   }));
    };
    std::atomic<bool> finished{false};
    std::thread watch([&] { // 20 s without a new result: a lost wake-up
        int seen = -1;
        auto last = std::chrono::steady_clock::now();
        while (!finished) {
            std::this_thread::sleep_for(100ms);
            if (results != seen) {
                seen = results;
                last = std::chrono::steady_clock::now();
            } else if (std::chrono::steady_clock::now() - last > 20s) {
                std::fprintf(stderr,
                             "FAIL: %d of %d results, none for 20 s: engine::run() "
                             "was not woken for remote work\n",
                             seen, chains * per_chain);
                std::_Exit(1);
            }
        }
    });
    struct gate {
        std::coroutine_handle<>& waiter;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) noexcept { waiter = h; }
        void await_resume() const noexcept {}
    };
    auto wait = [](gate g) -> icmpengine::task<void> { co_await g; };
    for (int c = 0; c < chains; ++c)
        asio::post(pool, [&, c] { next(c, per_chain); });
    eng.run(wait(gate{waiter}));
    finished = true;
    watch.join();
    pool.join();
    REQUIRE(replies == chains * per_chain);
    require_balanced(eng.stats());
}

TEST_CASE("pool coroutines co_await remote pings; || cancels them through the engine",
          "[asio][remote][cancel]") {
    constexpr int coroutines = 64;
    constexpr int pings_each = 50;
    asio::io_context engine_ctx(1);
    engine eng;
    std::optional<asio_driver> driver(std::in_place, engine_ctx.get_executor(), eng);
    const remote_engine remote = eng.remote();
    std::atomic<int> replies{0};
    std::atomic<int> timer_won{0};
    std::atomic<int> finished{0};
    std::atomic<int> failures{0};
    asio::thread_pool pool(4);
    auto body = [&](int c) -> asio::awaitable<void> {
        const ip_address target =
            c % 2 == 0 ? ip_address::parse("::1") : ip_address::from_v4(0x7f060001u + c);
        for (int i = 0; i < pings_each; ++i) {
            const ping_result r = co_await async_ping(remote, target, 10s, asio::use_awaitable);
            replies += r.status == ping_status::reply && r.from == target ? 1 : 0;
        }
        // Cancelled from a pool thread: posted to the engine, which ends
        // the ping as cancelled; the branch then completes on the pool.
        asio::steady_timer timer(co_await asio::this_coro::executor, 20ms);
        auto v = co_await (async_ping(remote, silent_target(), 1h, asio::use_awaitable) ||
                           timer.async_wait(asio::use_awaitable));
        timer_won += v.index() == 1 ? 1 : 0;
    };
    for (int c = 0; c < coroutines; ++c)
        asio::co_spawn(pool, body(c), [&](std::exception_ptr e) {
            if (e)
                ++failures;
            if (++finished == coroutines)
                engine_ctx.stop();
        });
    watchdog dog(engine_ctx, [&] {
        return static_cast<std::uint64_t>(replies.load() + timer_won.load() + finished.load());
    });
    engine_ctx.run();
    pool.join();
    REQUIRE_FALSE(dog.fired());
    REQUIRE(failures == 0);
    REQUIRE(finished == coroutines);
    REQUIRE(replies == coroutines * pings_each);
    REQUIRE(timer_won == coroutines);
    const engine_stats s = eng.stats();
    REQUIRE(s.cancelled == static_cast<std::uint64_t>(coroutines));
    REQUIRE(s.replies == static_cast<std::uint64_t>(coroutines * pings_each));
    REQUIRE(s.in_flight == 0);
    require_balanced(s);
}

TEST_CASE("a remote handle of an engine that is gone completes at once, posted", "[asio][remote]") {
    remote_engine remote;
    {
        engine eng;
        remote = eng.remote();
    }
    asio::io_context ctx(1);
    std::optional<ping_result> got;
    async_ping(remote, ip_address::parse("::1"), 1s,
               asio::bind_executor(ctx, [&](ping_result r) { got = r; }));
    REQUIRE_FALSE(got); // never from inside the initiating call
    ctx.run();
    REQUIRE(got);
    REQUIRE(got->status == ping_status::cancelled);
    REQUIRE(got->error == icmpengine::errc::stopped);
    REQUIRE(got->from == ip_address::parse("::1"));
}

TEST_CASE("remote async_ping refuses at the call what engine::ping refuses", "[asio][remote]") {
    engine eng;
    const remote_engine remote = eng.remote();
    constexpr std::int64_t ten_years_ns = std::int64_t{10} * 365 * 24 * 3600 * 1'000'000'000;
    const std::chrono::nanoseconds timeouts[] = {-1ns,
                                                 0ns,
                                                 1ns,
                                                 10us,
                                                 std::chrono::nanoseconds(ten_years_ns),
                                                 std::chrono::nanoseconds(ten_years_ns + 1)};
    const std::uint32_t payloads[] = {0, 56, 65507, 65508};
    int started = 0;
    for (const auto timeout : timeouts)
        for (const std::uint32_t payload : payloads) {
            const icmpengine::ping_options options{.payload_size = payload};
            bool engine_refuses = false;
            try {
                (void)eng.ping(silent_target(), timeout, options); // lazy: never runs
            } catch (const std::invalid_argument&) {
                engine_refuses = true;
            }
            bool remote_refuses = false;
            try {
                async_ping(remote, silent_target(), timeout, options, [](ping_result) {});
                ++started;
            } catch (const std::invalid_argument&) {
                remote_refuses = true;
            }
            INFO("timeout " << timeout.count() << " ns, payload " << payload);
            REQUIRE(engine_refuses == remote_refuses);
        }
    REQUIRE(started == 3 * 3); // three valid timeouts x three valid payloads
    eng.stop();                // the queued pings run and end as cancelled
    REQUIRE(eng.stats().cancelled == 9);
}
