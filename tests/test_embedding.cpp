// SPDX-License-Identifier: MIT
// System tests of the engine driven from outside (engine::poll and
// engine::native_handle) and from other threads (engine::remote). Every
// ping goes to loopback in the test's private namespace, or to 198.18.99.0/24,
// which a route sends into `lo` where nobody answers (no forwarding).
// Timing: no test bounds a duration from above except where only time can
// tell a wake-up was missed, and those bounds are 20 s against normal
// milliseconds.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "netns.hpp"

#include <icmpengine/icmpengine.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <poll.h>
#include <string>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::engine_stats;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;
using icmpengine::remote_engine;
using icmpengine::task;
using icmpengine::testing::require_balanced;
using icmpengine::testing::silent_target;
using icmpengine::testing::thread_cpu_ms;

namespace {

/// Collects results by cookie; counts deliveries per cookie.
struct collector final : icmpengine::ping_handler {
    std::vector<ping_result> results;
    std::vector<int> calls;
    std::size_t done = 0;
    explicit collector(std::size_t n) : results(n), calls(n, 0) {}
    void on_ping_result(std::uint64_t cookie, const ping_result& r) override {
        results[cookie] = r;
        ++calls[cookie];
        ++done;
    }
};

/// An epoll loop that waits only on the engine's descriptor and calls
/// poll() when it is readable, until `done()` or a wait of `give_up` with
/// nothing to do (a missed wake-up). Returns false on the latter.
template <typename Done>
bool epoll_drive(engine& eng, Done done, std::chrono::milliseconds give_up = 20s) {
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    REQUIRE(ep >= 0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    REQUIRE(::epoll_ctl(ep, EPOLL_CTL_ADD, eng.native_handle(), &ev) == 0);
    bool ok = true;
    while (!done()) {
        epoll_event out{};
        const int n = ::epoll_wait(ep, &out, 1, static_cast<int>(give_up.count()));
        if (n == 0) {
            ok = false;
            break;
        }
        if (n > 0)
            eng.poll();
    }
    ::close(ep);
    return ok;
}

/// The scheduler state of thread `tid` of this process ('S': sleeping).
char thread_state(pid_t tid) {
    std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    return close == std::string::npos || close + 2 >= line.size() ? '?' : line[close + 2];
}

task<int> three_pings(engine& eng, int& replies) {
    for (int i = 0; i < 3; ++i) {
        const ping_result r = co_await eng.ping(ip_address::parse("::1"), 5s);
        replies += r.status == ping_status::reply ? 1 : 0;
    }
    co_return replies;
}

task<void> spawned_pings(engine& eng, int& replies, bool& finished) {
    co_await three_pings(eng, replies);
    finished = true;
}

} // namespace

TEST_CASE("an epoll loop drives pings with only native_handle() and poll()", "[embed]") {
    engine eng;
    const int fd = eng.native_handle();
    REQUIRE(fd >= 0);
    constexpr std::size_t n = 2000;
    collector got(n);
    std::vector<ip_address> targets;
    for (std::size_t i = 0; i < n; ++i)
        targets.push_back(i % 5 == 0
                              ? ip_address::parse("::1")
                              : ip_address::from_v4(0x7f020001u + static_cast<std::uint32_t>(i)));
    // Started from outside the engine's loop: nothing is sent until poll()
    // runs, and the descriptor must say so.
    for (std::size_t i = 0; i < n; ++i)
        eng.start_ping(targets[i], 10s, got, i);
    REQUIRE(epoll_drive(eng, [&] { return got.done == n; }));
    for (std::size_t i = 0; i < n; ++i) {
        INFO("ping " << i << " to " << targets[i].to_string());
        REQUIRE(got.calls[i] == 1);
        REQUIRE(got.results[i].status == ping_status::reply);
        REQUIRE(got.results[i].from == targets[i]);
    }
    const engine_stats s = eng.stats();
    REQUIRE(s.sent == n);
    REQUIRE(s.replies == n);
    require_balanced(s);
    REQUIRE_FALSE(eng.poll()); // idle: nothing pending
}

TEST_CASE("coroutines spawned on an embedded engine run under poll()", "[embed]") {
    engine eng;
    int replies = 0;
    bool finished = false;
    eng.spawn(spawned_pings(eng, replies, finished));
    REQUIRE(epoll_drive(eng, [&] { return finished; }));
    REQUIRE(replies == 3);
    require_balanced(eng.stats());
}

TEST_CASE("poll() outside any loop does only what is ready and never blocks", "[embed]") {
    engine eng;
    collector got(1);
    eng.start_ping(silent_target(), 1h, got, 0);
    // Returns with the ping pending: a poll() that waited for it would hang
    // the test (the ping's timeout is an hour).
    REQUIRE(eng.poll());
    REQUIRE(got.done == 0);
    REQUIRE(eng.stats().in_flight == 1);
    eng.stop();
    REQUIRE(got.calls[0] == 1);
    REQUIRE(got.results[0].status == ping_status::cancelled);
}

TEST_CASE("the descriptor becomes readable when the timer fires", "[embed]") {
    engine eng;
    collector got(1);
    const int fd = eng.native_handle();
    eng.start_ping(silent_target(), 50ms, got, 0);
    eng.poll(); // sends it
    const auto before = std::chrono::steady_clock::now();
    REQUIRE(epoll_drive(eng, [&] { return got.done == 1; }));
    // Never early: a timeout follows its deadline.
    REQUIRE(std::chrono::steady_clock::now() - before >= 40ms);
    REQUIRE(got.results[0].status == ping_status::timeout);
    (void)fd;
}

TEST_CASE("an idle embedded engine with a long ping pending costs no CPU", "[embed]") {
    engine eng;
    collector got(1);
    const int fd = eng.native_handle();
    eng.start_ping(silent_target(), 10s, got, 0);
    eng.poll();
    // One second of waiting on the descriptor, polling whenever it says so:
    // a busy loop or a periodic wake-up would burn CPU here (a busy loop
    // ~1000 ms); an idle engine lets the thread sleep.
    const double cpu_before = thread_cpu_ms();
    const auto end = std::chrono::steady_clock::now() + 1s;
    int wakeups = 0;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) > 0) {
            ++wakeups;
            eng.poll();
        }
    }
    const double cpu = thread_cpu_ms() - cpu_before;
    INFO("CPU " << cpu << " ms over 1 s, " << wakeups << " wake-ups");
    REQUIRE(cpu < 10.0);
    REQUIRE(wakeups <= 2); // at most the poll() that follows the send's own completion
    REQUIRE(got.done == 0);
    eng.stop();
}

TEST_CASE("remote pings from 8 threads into one engine", "[remote]") {
    constexpr int threads = 8;
    constexpr int per_thread = 10000;
    // Declared before the engine: its destructor may still run callbacks.
    std::atomic<int> posted{0};
    std::vector<int> replies(threads, 0); // written on the engine's thread only
    std::vector<int> others(threads, 0);
    int results = 0;
    engine eng;
    const remote_engine remote = eng.remote();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            const ip_address target =
                ip_address::from_v4(0x7f030001u + static_cast<std::uint32_t>(t));
            for (int i = 0; i < per_thread; ++i) {
                const std::error_code e =
                    remote.ping(target, 10s, [&, t, target](const ping_result& r) {
                        ++results;
                        if (r.status == ping_status::reply && r.from == target)
                            ++replies[t];
                        else
                            ++others[t];
                    });
                if (!e)
                    ++posted; // (Catch's REQUIRE is not for other threads)
            }
        });
    // The engine's loop: run() until every result is in. It blocks in
    // io_uring_enter between bursts; remote posts must wake it.
    // Gives up after 20 s without a new result: a missed wake-up.
    auto wait_all = [](engine& e, int& results, int total) -> task<void> {
        int seen = 0;
        auto last_progress = std::chrono::steady_clock::now();
        while (results < total &&
               std::chrono::steady_clock::now() - last_progress < std::chrono::seconds(20)) {
            co_await e.sleep_for(1ms);
            if (results != seen) {
                seen = results;
                last_progress = std::chrono::steady_clock::now();
            }
        }
    };
    eng.run(wait_all(eng, results, threads * per_thread));
    for (std::thread& w : workers)
        w.join();
    REQUIRE(posted == threads * per_thread);
    for (int t = 0; t < threads; ++t) {
        INFO("thread " << t);
        REQUIRE(replies[t] == per_thread);
        REQUIRE(others[t] == 0);
    }
    const engine_stats s = eng.stats();
    REQUIRE(s.sent == static_cast<std::uint64_t>(threads * per_thread));
    require_balanced(s);
}

TEST_CASE("a remote post wakes a run() blocked in io_uring_enter", "[remote]") {
    engine eng;
    const remote_engine remote = eng.remote();
    const pid_t engine_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    std::atomic<bool> answered{false};
    ping_result result;
    bool resumed = false;
    std::coroutine_handle<> waiter;
    struct gate {
        std::coroutine_handle<>& waiter;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) noexcept { waiter = h; }
        void await_resume() const noexcept {}
    };
    auto wait_for_remote = [](gate g, bool& resumed) -> task<void> {
        co_await g;
        resumed = true;
    };
    std::thread poster([&] {
        // Only once the engine's thread sleeps (in io_uring_enter, with
        // nothing in flight) does the post go out: then only the wake-up
        // can get the answer back. A missed wake-up leaves run() asleep:
        // the test says so after 20 s instead of hanging.
        const auto give_up = std::chrono::steady_clock::now() + 20s;
        while (thread_state(engine_tid) != 'S' && std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(1ms);
        const std::error_code posted =
            remote.ping(ip_address::parse("127.0.0.1"), 5s, [&](const ping_result& r) {
                result = r;
                answered = true;
                waiter.resume();
            });
        while (!answered && std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(1ms);
        if (!answered) {
            std::fprintf(stderr,
                         "FAIL: the remote ping (post: %s) was not answered within 20 s: "
                         "the engine was not woken\n",
                         posted.message().c_str());
            std::_Exit(1);
        }
    });
    eng.run(wait_for_remote(gate{waiter}, resumed));
    poster.join();
    REQUIRE(resumed);
    REQUIRE(result.status == ping_status::reply);
}

TEST_CASE("remote handles outlive their engine; queued pings end once", "[remote]") {
    remote_engine remote;
    std::vector<int> calls(100, 0);
    std::vector<ping_status> status(100, ping_status::reply);
    {
        engine eng;
        remote = eng.remote();
        REQUIRE(remote.alive());
        // Queued from this thread, never drained by a loop: the engine's
        // destructor runs them, and their pings end as cancelled.
        for (int i = 0; i < 100; ++i)
            REQUIRE_FALSE(remote.ping(silent_target(), 1h, [&, i](const ping_result& r) {
                ++calls[i];
                status[i] = r.status;
            }));
    }
    for (int i = 0; i < 100; ++i) {
        REQUIRE(calls[i] == 1);
        REQUIRE(status[i] == ping_status::cancelled);
    }
    REQUIRE_FALSE(remote.alive());
    bool ran = false;
    REQUIRE(remote.post([&](engine&) { ran = true; }) == icmpengine::errc::stopped);
    REQUIRE(remote.ping(ip_address::parse("::1"), 1s, [&](const ping_result&) { ran = true; }) ==
            icmpengine::errc::stopped);
    REQUIRE_FALSE(ran);
    REQUIRE(remote_engine{}.post([](engine&) {}) == icmpengine::errc::stopped);
}

TEST_CASE("destroying an embedded engine with pings in flight ends each once", "[embed]") {
    collector got(50);
    {
        engine eng;
        eng.native_handle();
        const remote_engine remote = eng.remote();
        for (std::size_t i = 0; i < 50; ++i)
            eng.start_ping(silent_target(), 1h, got, i);
        eng.poll();
        REQUIRE(eng.stats().in_flight == 50);
    }
    for (std::size_t i = 0; i < 50; ++i) {
        REQUIRE(got.calls[i] == 1);
        REQUIRE(got.results[i].status == ping_status::cancelled);
    }
}

TEST_CASE("remote_engine::ping checks its arguments at the call", "[remote]") {
    engine eng;
    const remote_engine remote = eng.remote();
    REQUIRE_THROWS_AS(remote.ping(ip_address::parse("::1"), 0s, [](const ping_result&) {}),
                      std::invalid_argument);
}

TEST_CASE("engine::cancel ends one ping as cancelled, once", "[embed]") {
    collector got(4);
    engine eng({.max_in_flight = 2});
    const icmpengine::ping_ticket a = eng.start_ping(silent_target(), 1h, got, 0);
    const icmpengine::ping_ticket b = eng.start_ping(silent_target(), 1h, got, 1);
    // Beyond max_in_flight: waits for a slot.
    const icmpengine::ping_ticket c = eng.start_ping(silent_target(), 1h, got, 2);
    const icmpengine::ping_ticket d = eng.start_ping(silent_target(), 1h, got, 3);
    REQUIRE(a.slot != b.slot);
    REQUIRE(c.slot == 0xffffffffu);
    eng.poll();
    REQUIRE(eng.cancel(b));
    REQUIRE_FALSE(eng.cancel(b)); // ended already
    REQUIRE(eng.cancel(d));       // still waiting
    eng.poll();                   // delivers; c takes b's place
    REQUIRE(got.calls[1] == 1);
    REQUIRE(got.results[1].status == ping_status::cancelled);
    REQUIRE(got.calls[3] == 1);
    REQUIRE(got.results[3].status == ping_status::cancelled);
    REQUIRE(got.calls[0] == 0);
    REQUIRE(got.calls[2] == 0);
    REQUIRE(eng.stats().in_flight == 2);
    REQUIRE(eng.cancel(c)); // waited, then launched: found by its handler and cookie
    eng.poll();
    REQUIRE(got.results[2].status == ping_status::cancelled);
    const engine_stats s = eng.stats();
    REQUIRE(s.cancelled == 3);
    REQUIRE(s.in_flight == 1);
    require_balanced(s);
    eng.stop();
    REQUIRE(got.calls[0] == 1);
}
