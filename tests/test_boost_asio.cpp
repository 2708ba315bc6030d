// SPDX-License-Identifier: MIT
// System tests of icmpengine/boost_asio.hpp: the engine driven from a
// Boost.Asio io_context (the exporter's setup), pings awaited from Boost
// coroutines with async_ping, and icmpengine tasks awaited with async_run.
// Pings go to loopback in the test's private namespace, or to the silent
// target (routed into `lo`, never answered). No upper bound on time.
#include <catch2/catch.hpp>

#include "engine_test.hpp"

#include <icmpengine/boost_asio.hpp>
#include <icmpengine/icmpengine.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace net = boost::asio;
using icmpengine::engine;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;
using icmpengine::task;
using icmpengine::testing::require_balanced;
using icmpengine::testing::silent_target;

namespace {

struct boost_engine {
    net::io_context ctx{1};
    engine eng;
    std::optional<icmpengine::boost_asio::driver> driver{std::in_place, ctx.get_executor(), eng};
};

task<int> count_replies(engine& eng, std::vector<ip_address> targets) {
    int replies = 0;
    for (const ip_address& t : targets)
        replies += (co_await eng.ping(t, 10s)).status == ping_status::reply ? 1 : 0;
    co_return replies;
}

task<int> throws_after_a_ping(engine& eng) {
    (void)co_await eng.ping(ip_address::parse("127.0.0.1"), 10s);
    throw std::runtime_error("from the engine's task");
}

} // namespace

TEST_CASE("1,000 Boost coroutines each co_await 5 pings on a Boost-driven engine", "[boost_asio]") {
    constexpr std::size_t coroutines = 1000;
    boost_engine b;
    std::size_t good = 0;
    std::size_t bad = 0;
    std::size_t finished = 0;
    const std::thread::id ctx_thread = std::this_thread::get_id();
    bool completions_on_ctx_thread = true;
    auto pinger = [&](std::size_t i) -> net::awaitable<void> {
        const ip_address target =
            i % 5 == 0 ? ip_address::parse("::1") : ip_address::from_v4(0x7f050001u + i);
        for (int k = 0; k < 5; ++k) {
            const ping_result r =
                co_await icmpengine::boost_asio::async_ping(b.eng, target, 10s, net::use_awaitable);
            completions_on_ctx_thread &= std::this_thread::get_id() == ctx_thread;
            ++(r.status == ping_status::reply && r.from == target ? good : bad);
        }
    };
    for (std::size_t i = 0; i < coroutines; ++i)
        net::co_spawn(b.ctx, pinger(i), [&](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
            if (++finished == coroutines)
                b.driver.reset(); // lets run() return
        });
    b.ctx.run();
    CHECK(finished == coroutines);
    CHECK(good == coroutines * 5);
    CHECK(bad == 0);
    CHECK(completions_on_ctx_thread);
    require_balanced(b.eng.stats());
    CHECK(b.eng.stats().in_flight == 0);
}

TEST_CASE("async_run: an engine task's value, its exception, and a timeout", "[boost_asio]") {
    boost_engine b;
    std::optional<int> replies;
    std::string caught;
    std::optional<ping_status> silent;
    net::co_spawn(
        b.ctx,
        [&]() -> net::awaitable<void> {
            // Built first: GCC 12 rejects a braced list inside a co_await.
            std::vector<ip_address> targets;
            targets.push_back(ip_address::parse("127.0.0.1"));
            targets.push_back(ip_address::parse("::1"));
            replies = co_await icmpengine::boost_asio::async_run(
                b.eng, count_replies(b.eng, std::move(targets)), net::use_awaitable);
            try {
                (void)co_await icmpengine::boost_asio::async_run(b.eng, throws_after_a_ping(b.eng),
                                                                 net::use_awaitable);
            } catch (const std::runtime_error& e) {
                caught = e.what();
            }
            const ping_result r = co_await icmpengine::boost_asio::async_ping(
                b.eng, silent_target(), 50ms, net::use_awaitable);
            silent = r.status;
            b.driver.reset();
        },
        net::detached);
    b.ctx.run();
    REQUIRE(replies.has_value());
    CHECK(*replies == 2);
    CHECK(caught == "from the engine's task");
    REQUIRE(silent.has_value());
    CHECK(*silent == ping_status::timeout);
    require_balanced(b.eng.stats());
}

TEST_CASE("async_ping refuses bad arguments at the call", "[boost_asio]") {
    boost_engine b;
    CHECK_THROWS_AS(icmpengine::boost_asio::async_ping(b.eng, ip_address::parse("127.0.0.1"), -1s,
                                                       [](ping_result) {}),
                    std::invalid_argument);
    b.driver.reset();
    b.ctx.run();
    CHECK(b.eng.stats().sent == 0);
}
