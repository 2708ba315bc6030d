// SPDX-License-Identifier: MIT
// System tests of icmpengine::engine: how pings end when their owners go.
// stop() and the destructor end every ping exactly once as cancelled (also
// when called again from inside stop()); forget() detaches a handler; a ping
// coroutine destroyed in any state of its ping leaves nothing behind;
// engine::ping's frames (from a pool of the engine's, lib/frame_pool.hpp)
// reused round after round and outliving the engine with their tasks.
// support/system_main.cpp has moved this process into a private network
// namespace: every packet here goes to loopback.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "netns.hpp"
#include "result_collector.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using namespace icmpengine;
using namespace icmpengine::testing;

namespace {

/// Turns the loop until no ping is in flight or waiting (each ending
/// however it ends), for at most 20 s: false if some never ended.
task<bool> all_ended(engine& eng) {
    return testing::wait_until(
        eng,
        [&eng] {
            const engine_stats s = eng.stats();
            return s.in_flight == 0 && s.waiting == 0;
        },
        20s);
}

} // namespace

TEST_CASE("stop() called again from inside stop(): each result once, no frame freed early",
          "[engine][stop]") {
    SECTION("from a handler that starts a ping and stops") {
        struct handler final : icmpengine::ping_handler {
            engine* eng = nullptr;
            std::map<std::uint64_t, int> calls;
            void on_ping_result(std::uint64_t cookie, const ping_result& r) override {
                CHECK(r.status == ping_status::cancelled);
                if (calls[cookie]++ == 0 && calls.size() == 1) {
                    eng->start_ping(ip_address::parse("127.0.0.1"), 1s, *this, 100);
                    eng->stop();
                }
            }
        } h;
        engine eng({.fake_drop_probability = 1.0}); // nothing answers before stop()
        h.eng = &eng;
        for (std::uint64_t i = 0; i < 3; ++i)
            eng.start_ping(ip_address::parse("127.0.0.1"), 5s, h, i);
        eng.stop();
        REQUIRE(h.calls.size() == 4);
        for (const auto& [cookie, n] : h.calls) {
            INFO("cookie " << cookie);
            CHECK(n == 1);
        }
        const engine_stats s = eng.stats();
        CHECK(s.cancelled == 4);
        require_balanced(s);
    }
    SECTION("from a spawned task whose ping stop() cancelled") {
        engine eng({.fake_drop_probability = 1.0});
        bool after_stop = false;
        auto worker = [](engine& e, bool& after) -> task<void> {
            const ping_result r = co_await e.ping(ip_address::parse("127.0.0.1"), 5s);
            CHECK(r.status == ping_status::cancelled);
            e.stop();
            after = true; // the frame must still be alive here
        };
        eng.spawn(worker(eng, after_stop));
        eng.run(eng.sleep_for(1ms)); // a turn of the loop: the worker waits for its reply
        eng.stop();
        CHECK(after_stop);
        require_balanced(eng.stats());
    }
}

TEST_CASE("forget(): a handler's pending pings end without it; a ping_all task destroyed early",
          "[engine][start_ping][forget]") {
    SECTION("in flight, waiting and ended but undelivered") {
        struct counting final : icmpengine::ping_handler {
            int calls = 0;
            void on_ping_result(std::uint64_t, const ping_result&) override { ++calls; }
        } forgotten, kept;
        engine eng({.max_in_flight = 8, .fake_drop_probability = 1.0}); // all time out
        for (std::uint64_t i = 0; i < 6; ++i)
            eng.start_ping(ip_address::parse("127.0.0.1"), 20ms, forgotten, i);
        for (std::uint64_t i = 0; i < 6; ++i)
            eng.start_ping(ip_address::parse("127.0.0.1"), 20ms, kept, i);
        CHECK(eng.stats().in_flight == 8);
        CHECK(eng.stats().waiting == 4);
        eng.forget(forgotten); // 6 in flight; none of its own waiting
        CHECK(eng.stats().waiting == 4);
        CHECK(eng.run(all_ended(eng)));
        CHECK(forgotten.calls == 0);
        CHECK(kept.calls == 6);
        const engine_stats s = eng.stats();
        CHECK(s.sent == 12);
        CHECK(s.timeouts == 12);
        require_balanced(s);

        // Waiting for a slot: withdrawn, never sent.
        for (std::uint64_t i = 0; i < 12; ++i)
            eng.start_ping(ip_address::parse("127.0.0.1"), 20ms, i < 8 ? kept : forgotten, i);
        CHECK(eng.stats().waiting == 4);
        eng.forget(forgotten);
        CHECK(eng.stats().waiting == 0);
        CHECK(eng.run(all_ended(eng)));
        CHECK(forgotten.calls == 0);
        CHECK(kept.calls == 14);
        CHECK(eng.stats().sent == 20);
        require_balanced(eng.stats());
    }
    SECTION("a ping_all task destroyed with its pings in flight") {
        engine eng({.fake_drop_probability = 1.0}); // all time out
        const std::vector<ip_address> targets(64, ip_address::parse("127.0.0.1"));
        std::vector<ping_result> results(targets.size());
        {
            task<void> all = icmpengine::ping_all(eng, targets, results, {.timeout = 50ms});
            auto start = [](engine& e, task<void>& t) -> task<void> {
                // Started by hand, not awaited: it starts its pings and waits.
                icmpengine::detail::task_access::handle(t).resume();
                co_await e.sleep_for(1ms);
            };
            eng.run(start(eng, all));
            CHECK(eng.stats().in_flight == 64);
        }                               // destroyed here, its pings still in flight
        CHECK(eng.run(all_ended(eng))); // they time out with nobody to tell
        const engine_stats s = eng.stats();
        CHECK(s.timeouts == 64);
        require_balanced(s);
    }
}

TEST_CASE("stop() with 10k pings in flight resumes each exactly once as cancelled",
          "[engine][stop]") {
    testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
    testing::scoped_sysctl ignore6("net.ipv6.icmp.echo_ignore_all", "1");
    std::vector<int> resumed(10'000, 0);
    std::vector<ping_status> statuses(10'000, ping_status::reply);
    engine eng;
    auto one = [](engine& e, ip_address a, int& count, ping_status& status) -> task<void> {
        const ping_result r = co_await e.ping(a, 1h);
        ++count;
        status = r.status;
    };
    auto scenario = [&](engine& e) -> task<void> {
        std::vector<task<void>> pings;
        for (std::uint32_t i = 0; i < resumed.size(); ++i)
            pings.push_back(one(e, i % 2 ? addr("::1") : loopback_v4(i), resumed[i], statuses[i]));
        e.spawn([](engine& e2) -> task<void> {
            co_await e2.ping(addr("127.0.0.1"), 20ms); // times out
            e2.stop();
        }(e));
        co_await icmpengine::when_all(std::move(pings));
    };
    eng.run(scenario(eng));
    CHECK(std::all_of(resumed.begin(), resumed.end(), [](int c) { return c == 1; }));
    CHECK(std::all_of(statuses.begin(), statuses.end(),
                      [](ping_status s) { return s == ping_status::cancelled; }));
    CHECK(eng.stopped());
    // Later pings end at once as cancelled.
    auto late = eng.run(eng.ping(addr("127.0.0.1"), 1s));
    CHECK(late.status == ping_status::cancelled);
    CHECK(late.error == icmpengine::errc::stopped);
    const engine_stats s = eng.stats();
    CHECK(s.cancelled == 10'001);
    CHECK(s.in_flight == 0);
    require_balanced(s);
}

TEST_CASE("destroying the engine with 10k pings in flight cancels them all", "[engine][stop]") {
    testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
    std::vector<int> resumed(10'000, 0);
    std::vector<ping_status> statuses(10'000, ping_status::reply);
    {
        engine eng;
        for (std::uint32_t i = 0; i < resumed.size(); ++i)
            eng.spawn([](engine& e, ip_address a, int& count, ping_status& status) -> task<void> {
                const ping_result r = co_await e.ping(a, 1h);
                ++count;
                status = r.status;
            }(eng, loopback_v4(i), resumed[i], statuses[i]));
        // Let them all go out, then leave with them pending.
        auto r = eng.run(eng.ping(addr("127.0.0.1"), 30ms));
        CHECK(r.status == ping_status::timeout);
        CHECK(eng.stats().in_flight == resumed.size());
        require_balanced(eng.stats());
    }
    CHECK(std::all_of(resumed.begin(), resumed.end(), [](int c) { return c == 1; }));
    CHECK(std::all_of(statuses.begin(), statuses.end(),
                      [](ping_status s) { return s == ping_status::cancelled; }));
}

TEST_CASE("a ping coroutine destroyed in any state of its ping leaves nothing behind",
          "[engine][start_ping][abandon]") {
    using icmpengine::detail::task_access;
    // Each scenario starts pings by hand (no awaiter) so that their tasks can
    // be destroyed while the ping is pending; then it pings once more and
    // keeps the loop turning until the engine holds no ping for them.
    auto settle = [](engine& e) { return all_ended(e); };

    SECTION("never started, or in flight") {
        engine eng;
        auto scenario = [](engine& e) -> task<ping_result> {
            { task<ping_result> never_started = e.ping(addr("127.0.0.1"), 1s); }
            {
                task<ping_result> inner = e.ping(addr("127.0.0.1"), 1s);
                task_access::handle(inner).resume();
                REQUIRE_FALSE(inner.is_ready());
                CHECK(e.stats().in_flight == 1);
            } // destroyed with its ping in flight
            co_return co_await e.ping(addr("::1"), 1s);
        };
        CHECK(eng.run(scenario(eng)).status == ping_status::reply);
        CHECK(eng.run(settle(eng)));
        const engine_stats s = eng.stats();
        CHECK(s.sent == 2);
        CHECK(s.replies == 2);
        CHECK(s.in_flight == 0);
        require_balanced(s);
    }
    SECTION("queued for a slot") {
        engine eng({.max_in_flight = 1});
        auto scenario = [](engine& e) -> task<ping_result> {
            task<ping_result> first = e.ping(addr("127.0.0.1"), 1s);
            task_access::handle(first).resume();
            {
                task<ping_result> queued = e.ping(addr("127.0.0.1"), 1s);
                task_access::handle(queued).resume();
                CHECK(e.stats().waiting == 1);
            } // destroyed while waiting for the slot
            CHECK(e.stats().waiting == 0);
            co_return co_await e.ping(addr("::1"), 1s);
        };
        CHECK(eng.run(scenario(eng)).status == ping_status::reply);
        CHECK(eng.run(settle(eng)));
        const engine_stats s = eng.stats();
        CHECK(s.sent == 2); // the destroyed one was never sent
        CHECK(s.replies == 2);
        require_balanced(s);
    }
    SECTION("ended by stop() while in flight, not yet delivered") {
        engine eng({.max_in_flight = 1});
        auto scenario = [](engine& e) -> task<void> {
            {
                task<ping_result> in_flight = e.ping(addr("127.0.0.1"), 1s);
                task_access::handle(in_flight).resume();
                CHECK(e.stats().in_flight == 1);
                e.stop(); // ends it; its result waits for the loop
                CHECK(e.stats().cancelled == 1);
            } // destroyed before the result is delivered
            co_await e.sleep_for(1ms);
        };
        eng.run(scenario(eng));
        const engine_stats s = eng.stats();
        CHECK(s.sent == 1);
        CHECK(s.cancelled == 1);
        require_balanced(s);
    }
    SECTION("ended by stop() while queued for a slot, not yet delivered") {
        engine eng({.max_in_flight = 1});
        auto scenario = [](engine& e) -> task<void> {
            {
                task<ping_result> in_flight = e.ping(addr("127.0.0.1"), 1s);
                task_access::handle(in_flight).resume();
                task<ping_result> queued = e.ping(addr("127.0.0.1"), 1s);
                task_access::handle(queued).resume();
                CHECK(e.stats().waiting == 1);
                e.stop(); // ends both; their results wait for the loop
                CHECK(e.stats().cancelled == 2);
            } // both destroyed before their results are delivered
            co_await e.sleep_for(1ms);
        };
        eng.run(scenario(eng));
        const engine_stats s = eng.stats();
        CHECK(s.sent == 2);
        CHECK(s.cancelled == 2);
        require_balanced(s);
    }
    SECTION("ended in the same turn as a start_ping ping whose handler destroys it") {
        // Deadlines 1 ns apart expire in one batch, the handler's ping's
        // first: its result is delivered while the victim's still waits.
        testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
        result_collector c;
        engine eng;
        std::optional<task<ping_result>> victim;
        c.then = [&](std::uint64_t, const ping_result& r) {
            CHECK(r.status == ping_status::timeout);
            CHECK(eng.stats().in_flight == 0); // the victim's ping ended too
            victim.reset();
        };
        auto scenario = [&](engine& e) -> task<void> {
            c.start(e, addr("127.0.0.1"), 20ms, 1);
            victim.emplace(e.ping(addr("127.0.0.2"), 20ms + 1ns));
            task_access::handle(*victim).resume();
            co_await c.arrivals(1);
            co_await e.sleep_for(1ms);
        };
        c.run(eng, scenario(eng));
        CHECK_FALSE(victim.has_value());
        const engine_stats s = eng.stats();
        CHECK(s.sent == 2);
        CHECK(s.timeouts == 2);
        require_balanced(s);
    }
}

TEST_CASE("engine::ping frames: rounds of when_all on one engine, tasks outliving the engine",
          "[engine][when_all][frames]") {
    using icmpengine::detail::task_access;
    // Distinct targets: a reply credited to the wrong ping shows in `from`.
    auto targets = [](std::uint32_t n, std::uint32_t first) {
        std::vector<ip_address> t;
        for (std::uint32_t i = 0; i < n; ++i)
            t.push_back(loopback_v4(first + i));
        return t;
    };
    auto round = [](engine& e, std::vector<ip_address> to) -> task<std::vector<ping_result>> {
        std::vector<task<ping_result>> pings;
        for (const ip_address& a : to)
            pings.push_back(e.ping(a, 10s));
        co_return co_await icmpengine::when_all(std::move(pings));
    };
    auto check_round = [](const std::vector<ping_result>& results,
                          const std::vector<ip_address>& to) {
        REQUIRE(results.size() == to.size());
        std::size_t right = 0;
        for (std::size_t i = 0; i < to.size(); ++i)
            if (results[i].status == ping_status::reply && results[i].from == to[i])
                ++right;
        CHECK(right == to.size());
    };

    SECTION("1,000 pings, then more rounds on the same engine: all answered, in input order") {
        engine eng;
        std::uint64_t pings = 0;
        // 1,000; again (the pool was trimmed to its first chunk and is
        // reused); 5,000 (it grows again); 10 with IPv6 in between.
        for (const auto& [n, first] : std::vector<std::pair<std::uint32_t, std::uint32_t>>{
                 {1000, 0}, {1000, 1000}, {5000, 2000}, {10, 0}}) {
            INFO("round of " << n);
            std::vector<ip_address> to = targets(n, first);
            if (n == 10)
                for (std::size_t i = 0; i < to.size(); i += 2)
                    to[i] = addr("::1");
            check_round(eng.run(round(eng, to)), to);
            pings += n;
            const engine_stats s = eng.stats();
            CHECK(s.replies == pings);
            CHECK(s.in_flight == 0);
            require_balanced(s);
        }
    }
    SECTION("tasks never started, destroyed after the engine") {
        std::vector<task<ping_result>> never_run;
        {
            engine eng;
            for (std::uint32_t i = 0; i < 3000; ++i) // more than one chunk of frames
                never_run.push_back(eng.ping(loopback_v4(i), 1s));
            // A round meanwhile: its frames come and go around the waiting ones.
            check_round(eng.run(round(eng, targets(100, 0))), targets(100, 0));
        }
        for (const auto& t : never_run)
            CHECK_FALSE(t.is_ready());
        never_run
            .clear(); // the last frames: the pool goes with them (ASan: no leak, no use after free)
    }
    SECTION("tasks the engine's destruction ended, destroyed after it") {
        std::vector<task<ping_result>> started;
        std::optional<task<std::vector<ping_result>>> all;
        {
            engine eng({.fake_drop_probability = 1.0}); // nothing answers
            auto scenario = [&](engine& e) -> task<void> {
                for (std::uint32_t i = 0; i < 50; ++i) {
                    started.push_back(e.ping(loopback_v4(i), 1h));
                    task_access::handle(started.back()).resume();
                }
                std::vector<task<ping_result>> group;
                for (std::uint32_t i = 0; i < 2000; ++i)
                    group.push_back(e.ping(loopback_v4(i), 1h));
                all.emplace(icmpengine::when_all(std::move(group)));
                task_access::handle(*all).resume(); // started by hand, not awaited
                co_await e.sleep_for(1ms);
                CHECK(e.stats().in_flight == 2050);
            };
            eng.run(scenario(eng));
            REQUIRE_FALSE(all->is_ready());
        } // every ping cancelled; the when_all finished inside the destructor
        for (auto& t : started) {
            REQUIRE(t.is_ready());
            CHECK(task_access::take_result(t).status == ping_status::cancelled);
        }
        REQUIRE(all->is_ready());
        const std::vector<ping_result> results = task_access::take_result(*all);
        REQUIRE(results.size() == 2000);
        CHECK(std::all_of(results.begin(), results.end(),
                          [](const ping_result& r) { return r.status == ping_status::cancelled; }));
        all.reset();     // its frames were freed when it finished: to the released pool
        started.clear(); // the last frames: the pool goes with them
    }
}
