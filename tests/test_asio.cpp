// SPDX-License-Identifier: MIT
// System tests of icmpengine/asio.hpp with the engine on the Asio thread
// (mode (a)): asio_driver keeps the engine driven from an io_context, and
// async_ping starts pings on it with any completion token. Every ping goes
// to loopback in the test's private namespace, or to 198.18.99.0/24, which
// a route sends into `lo` where nobody answers. Order is enforced by
// causality (a loopback reply that follows other requests in the engine's
// queue), never by sleeps; the watchdog's 20 s without progress is the only
// upper bound on time.
#include <catch2/catch.hpp>

#include "asio_test.hpp"

#include <icmpengine/asio.hpp>
#include <icmpengine/icmpengine.hpp>

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>

#include <chrono>
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
using icmpengine::testing::require_balanced;
using icmpengine::testing::silent_target;
using icmpengine::testing::thread_cpu_ms;
using icmpengine::testing::watchdog;

namespace {

/// 127.4.0.1 upward (all of 127/8 answers on lo), ::1 for every fifth.
ip_address loopback_target(std::size_t i) {
    return i % 5 == 0 ? ip_address::parse("::1")
                      : ip_address::from_v4(0x7f040001u + static_cast<std::uint32_t>(i % 60000));
}

/// An io_context with an engine driven from it; driver.reset() lets run() return.
struct asio_engine {
    asio::io_context ctx{1};
    engine eng;
    std::optional<asio_driver> driver{std::in_place, ctx.get_executor(), eng};
};

} // namespace

TEST_CASE("10,000 coroutines each co_await 10 pings on an Asio-driven engine", "[asio]") {
    constexpr std::size_t coroutines = 10'000;
    constexpr int pings_each = 10;
    asio_engine a;
    std::vector<int> good(coroutines, 0);
    std::vector<int> bad(coroutines, 0);
    std::uint64_t results = 0;
    std::size_t finished = 0;
    watchdog dog(a.ctx, [&] { return results; });
    auto pinger = [&](std::size_t i) -> asio::awaitable<void> {
        const ip_address target = loopback_target(i);
        for (int k = 0; k < pings_each; ++k) {
            const ping_result r = co_await async_ping(a.eng, target, 10s, asio::use_awaitable);
            ++(r.status == ping_status::reply && r.from == target ? good : bad)[i];
            ++results;
        }
    };
    for (std::size_t i = 0; i < coroutines; ++i)
        asio::co_spawn(a.ctx, pinger(i), [&](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
            if (++finished == coroutines) {
                a.driver.reset(); // from inside the engine's poll(): it must cope
                dog.cancel();
            }
        });
    a.ctx.run();
    REQUIRE_FALSE(dog.fired());
    REQUIRE(finished == coroutines);
    for (std::size_t i = 0; i < coroutines; ++i) {
        INFO("coroutine " << i << " pinging " << loopback_target(i).to_string());
        REQUIRE(good[i] == pings_each);
        REQUIRE(bad[i] == 0);
    }
    const engine_stats s = a.eng.stats();
    REQUIRE(s.sent == coroutines * pings_each);
    REQUIRE(s.replies == coroutines * pings_each);
    REQUIRE(s.in_flight == 0);
    require_balanced(s);
}

TEST_CASE("1,000 pings cancelled mid-flight through cancellation slots", "[asio][cancel]") {
    constexpr std::size_t n = 1000;
    asio_engine a;
    std::vector<asio::cancellation_signal> signals(n);
    std::vector<int> calls(n, 0);
    std::vector<ping_result> results(n);
    std::size_t done = 0;
    watchdog dog(a.ctx, [&] { return done; });
    const ip_address silent = silent_target();
    for (std::size_t i = 0; i < n; ++i)
        async_ping(a.eng, silent, 1h,
                   asio::bind_cancellation_slot(signals[i].slot(), [&, i](ping_result r) {
                       results[i] = r;
                       ++calls[i];
                       if (++done == n) {
                           a.driver.reset();
                           dog.cancel();
                       }
                   }));
    REQUIRE(done == 0); // never completed from inside the initiating call
    // Started after them: the engine sends in order, so when this reply is
    // in, the 1,000 requests are on the wire. Every type of cancellation
    // cancels.
    const asio::cancellation_type types[] = {asio::cancellation_type::terminal,
                                             asio::cancellation_type::partial,
                                             asio::cancellation_type::total};
    std::optional<ping_result> marker;
    async_ping(a.eng, ip_address::parse("127.0.0.1"), 10s, [&](ping_result r) {
        marker = r;
        REQUIRE(a.eng.stats().in_flight == n);
        for (std::size_t i = 0; i < n; ++i)
            signals[i].emit(types[i % 3]);
    });
    a.ctx.run();
    REQUIRE_FALSE(dog.fired());
    REQUIRE(marker);
    REQUIRE(marker->status == ping_status::reply);
    for (std::size_t i = 0; i < n; ++i) {
        INFO("ping " << i);
        REQUIRE(calls[i] == 1);
        REQUIRE(results[i].status == ping_status::cancelled);
        REQUIRE(results[i].error == std::errc::operation_canceled);
    }
    const engine_stats s = a.eng.stats();
    REQUIRE(s.sent == n + 1);
    REQUIRE(s.cancelled == n);
    REQUIRE(s.replies == 1);
    require_balanced(s);
    // A signal emitted after its ping ended reaches nobody.
    for (asio::cancellation_signal& sig : signals)
        sig.emit(asio::cancellation_type::terminal);
    REQUIRE(a.eng.stats().cancelled == n);
}

TEST_CASE("awaitable operators: a timer's || cancels the ping, a ping's || the timer",
          "[asio][cancel]") {
    asio_engine a;
    std::uint64_t steps = 0;
    watchdog dog(a.ctx, [&] { return steps; });
    auto body = [&]() -> asio::awaitable<void> {
        asio::steady_timer short_timer(a.ctx, 20ms);
        auto first = co_await (async_ping(a.eng, silent_target(), 1h, asio::use_awaitable) ||
                               short_timer.async_wait(asio::use_awaitable));
        ++steps;
        REQUIRE(first.index() == 1);
        REQUIRE(a.eng.stats().cancelled == 1);
        asio::steady_timer long_timer(a.ctx, 1h);
        auto second =
            co_await (async_ping(a.eng, ip_address::parse("::1"), 10s, asio::use_awaitable) ||
                      long_timer.async_wait(asio::use_awaitable));
        ++steps;
        REQUIRE(second.index() == 0);
        REQUIRE(std::get<0>(second).status == ping_status::reply);
    };
    std::exception_ptr failure;
    asio::co_spawn(a.ctx, body(), [&](std::exception_ptr e) {
        failure = e;
        a.driver.reset();
        dog.cancel();
    });
    a.ctx.run();
    REQUIRE_FALSE(dog.fired());
    if (failure)
        std::rethrow_exception(failure);
    REQUIRE(steps == 2);
    const engine_stats s = a.eng.stats();
    REQUIRE(s.cancelled == 1);
    REQUIRE(s.replies == 1);
    REQUIRE(s.in_flight == 0);
    require_balanced(s);
}

TEST_CASE("a parallel group of deferred pings: the first to end cancels the other",
          "[asio][cancel]") {
    asio_engine a;
    std::optional<ping_result> answered;
    std::optional<ping_result> silent;
    std::size_t first = 99;
    auto group = asio::experimental::make_parallel_group(
        async_ping(a.eng, silent_target(), 1h, asio::experimental::deferred),
        async_ping(a.eng, ip_address::parse("127.0.0.1"), 10s, asio::experimental::deferred));
    watchdog dog(a.ctx, [&] { return first; });
    group.async_wait(asio::experimental::wait_for_one(),
                     [&](std::array<std::size_t, 2> order, ping_result s, ping_result r) {
                         first = order[0];
                         silent = s;
                         answered = r;
                         a.driver.reset();
                         dog.cancel();
                     });
    a.ctx.run();
    REQUIRE_FALSE(dog.fired());
    REQUIRE(first == 1);
    REQUIRE(answered->status == ping_status::reply);
    REQUIRE(silent->status == ping_status::cancelled);
    const engine_stats s = a.eng.stats();
    REQUIRE(s.cancelled == 1);
    REQUIRE(s.replies == 1);
    require_balanced(s);
}

TEST_CASE("async_ping completes on the handler's associated executor", "[asio]") {
    asio_engine a;
    asio::io_context other;
    auto other_work = asio::make_work_guard(other);
    std::thread other_thread([&] { other.run(); });
    const std::thread::id engine_thread = std::this_thread::get_id();
    bool on_other = false;
    bool plain_on_engine_thread = false;
    int calls = 0;
    watchdog dog(a.ctx, [&] { return static_cast<std::uint64_t>(calls); });
    // Bound to another context: runs on its thread, then hands back.
    async_ping(a.eng, ip_address::parse("127.0.0.1"), 10s,
               asio::bind_executor(other, [&](ping_result r) {
                   on_other = other.get_executor().running_in_this_thread() &&
                              r.status == ping_status::reply;
                   asio::post(a.ctx, [&] {
                       ++calls;
                       // No executor of its own: on the engine's thread.
                       async_ping(a.eng, ip_address::parse("::1"), 10s, [&](ping_result r2) {
                           plain_on_engine_thread = std::this_thread::get_id() == engine_thread &&
                                                    r2.status == ping_status::reply;
                           ++calls;
                           a.driver.reset();
                           dog.cancel();
                       });
                   });
               }));
    a.ctx.run();
    REQUIRE_FALSE(dog.fired());
    other_work.reset();
    other_thread.join();
    REQUIRE(calls == 2);
    REQUIRE(on_other);
    REQUIRE(plain_on_engine_thread);
}

TEST_CASE("an exception from a completion escapes io_context::run; run() goes on", "[asio]") {
    asio_engine a;
    bool second = false;
    std::uint64_t calls = 0;
    watchdog dog(a.ctx, [&] { return calls; });
    async_ping(a.eng, ip_address::parse("127.0.0.1"), 10s, [&](ping_result) {
        ++calls;
        throw std::runtime_error("from a ping's callback");
    });
    REQUIRE_THROWS_WITH(a.ctx.run(), "from a ping's callback");
    REQUIRE(calls == 1);
    async_ping(a.eng, ip_address::parse("127.0.0.1"), 10s, [&](ping_result r) {
        second = r.status == ping_status::reply;
        ++calls;
        a.driver.reset();
        dog.cancel();
    });
    a.ctx.run();
    REQUIRE_FALSE(dog.fired());
    REQUIRE(second);
}

TEST_CASE("an Asio-driven engine with one long ping pending costs no CPU", "[asio][idle]") {
    asio_engine a;
    std::optional<ping_result> result;
    async_ping(a.eng, silent_target(), 10s, [&](ping_result r) { result = r; });
    a.ctx.run_for(50ms); // sends it; whatever wake-ups the send costs come now
    // One second with the ping pending: a busy loop would burn ~1000 ms of
    // CPU here, a periodic wake-up some; an idle engine lets epoll sleep.
    const double cpu_before = thread_cpu_ms();
    a.ctx.run_for(1s);
    const double cpu = thread_cpu_ms() - cpu_before;
    INFO("CPU " << cpu << " ms over 1 s");
    REQUIRE(cpu < 10.0);
    REQUIRE_FALSE(result);
    REQUIRE(a.eng.stats().in_flight == 1);
    a.driver.reset();
    a.eng.stop();
    a.ctx.restart();
    a.ctx.run(); // the cancelled result, posted by stop()
    REQUIRE(result);
    REQUIRE(result->status == ping_status::cancelled);
}

TEST_CASE("destroying the engine with pings in flight resumes each awaiter once", "[asio][stop]") {
    constexpr std::size_t n = 200;
    asio::io_context ctx(1);
    std::optional<engine> eng(std::in_place);
    std::optional<asio_driver> driver(std::in_place, ctx.get_executor(), *eng);
    const icmpengine::remote_engine remote = eng->remote();
    std::vector<int> resumed(n, 0);
    std::vector<ping_status> status(n, ping_status::reply);
    int timer_branches = 0;
    int remote_calls = 0;
    ping_status remote_status = ping_status::reply;
    auto waiter = [&](std::size_t i) -> asio::awaitable<void> {
        ping_result r;
        if (i % 2 == 0) {
            r = co_await async_ping(*eng, silent_target(), 1h, asio::use_awaitable);
        } else { // a timer pending beside it: cancellation must not reach a dead engine
            asio::steady_timer t(ctx, 1h);
            auto v = co_await (async_ping(*eng, silent_target(), 1h, asio::use_awaitable) ||
                               t.async_wait(asio::use_awaitable));
            if (v.index() == 1)
                ++timer_branches;
            else
                r = std::get<0>(v);
        }
        status[i] = r.status;
        ++resumed[i];
    };
    for (std::size_t i = 0; i < n; ++i)
        asio::co_spawn(ctx, waiter(i), asio::detached);
    // Through the remote handle: in flight (or still queued) when the
    // engine goes, its ping ends as cancelled, its callback runs once.
    async_ping(remote, silent_target(), 1h, asio::bind_executor(ctx, [&](ping_result r) {
                   ++remote_calls;
                   remote_status = r.status;
               }));
    bool sent = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            // After the others in the engine's queue: they are on the wire.
            co_await async_ping(*eng, ip_address::parse("127.0.0.1"), 10s, asio::use_awaitable);
            sent = true;
            ctx.stop();
        },
        asio::detached);
    ctx.run();
    REQUIRE(sent);
    REQUIRE(eng->stats().in_flight >= n);
    driver.reset();
    eng.reset(); // cancels everything; the completions are posted, not run inside
    for (std::size_t i = 0; i < n; ++i)
        REQUIRE(resumed[i] == 0);
    ctx.restart();
    ctx.run();
    for (std::size_t i = 0; i < n; ++i) {
        INFO("waiter " << i);
        REQUIRE(resumed[i] == 1);
        REQUIRE(status[i] == ping_status::cancelled);
    }
    REQUIRE(timer_branches == 0);
    REQUIRE(remote_calls == 1);
    REQUIRE(remote_status == ping_status::cancelled);
    // The remote handle outlives the engine: a ping through it completes at
    // once, posted, as cancelled with errc::stopped.
    std::optional<ping_result> late;
    async_ping(remote, ip_address::parse("::1"), 1s,
               asio::bind_executor(ctx, [&](ping_result r) { late = r; }));
    REQUIRE_FALSE(late);
    ctx.restart();
    ctx.run();
    REQUIRE(late);
    REQUIRE(late->status == ping_status::cancelled);
    REQUIRE(late->error == icmpengine::errc::stopped);
}

TEST_CASE("coroutines awaiting pings are destroyed with their io_context", "[asio][stop]") {
    // The engine outlives the context: stop() posts the cancelled
    // completions to the context, which is then destroyed without running
    // them. The awaiters' frames must be freed (ASan's leak check), never
    // resumed.
    engine eng;
    int resumed = 0;
    {
        asio::io_context ctx(1);
        asio_driver driver(ctx.get_executor(), eng);
        for (int i = 0; i < 10; ++i)
            asio::co_spawn(
                ctx,
                [&]() -> asio::awaitable<void> {
                    co_await async_ping(eng, silent_target(), 1h, asio::use_awaitable);
                    ++resumed;
                },
                asio::detached);
        while (eng.stats().sent < 10) // the coroutines have started their pings
            ctx.run_one();
        eng.stop(); // ends the pings; their completions are posted to ctx
    }               // ctx destroyed with them queued: the frames are freed, not resumed
    REQUIRE(resumed == 0);
    REQUIRE(eng.stats().cancelled == 10);
}
