// SPDX-License-Identifier: MIT
// Tests for icmpengine::when_all (include/icmpengine/when_all.hpp): results
// in input order whatever the completion order, tasks that finish at once
// and tasks that suspend, exceptions (every task still runs to the end; the
// lowest-indexed exception wins), the task<void> overload, and that every
// frame is freed. Completion orders are randomised from a printed seed.
//
// As in test_task.cpp, a top-level task is started by resuming its handle
// through detail::task_access; tasks that suspend wait on a manual_event the
// test sets.
#include "seed.hpp"

#include <icmpengine/when_all.hpp>

#include <catch2/catch.hpp>

#include "coro_test.hpp"

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using icmpengine::task;
using icmpengine::when_all;
using icmpengine::detail::task_access;

using icmpengine::testing::manual_event;
using icmpengine::testing::run_sync;

/// Counts live objects, to show that coroutine frames were destroyed.
class tracked {
  public:
    explicit tracked(int& alive) : m_alive(&alive) { ++*m_alive; }
    tracked(const tracked& other) : m_alive(other.m_alive) { ++*m_alive; }
    tracked& operator=(const tracked&) = delete;
    ~tracked() { --*m_alive; }

  private:
    int* m_alive;
};

/// What a job does: wait for `event` first (if not null), then record its
/// index in `finished`, then throw std::runtime_error("job <index>") if
/// `fail`, else return index * 10.
struct job_spec {
    int index = 0;
    manual_event* event = nullptr;
    bool fail = false;
};

task<int> job(job_spec spec, std::vector<int>& finished) {
    if (spec.event != nullptr)
        co_await *spec.event;
    finished.push_back(spec.index);
    if (spec.fail)
        throw std::runtime_error("job " + std::to_string(spec.index));
    co_return spec.index * 10;
}

task<> void_job(job_spec spec, std::vector<int>& finished) {
    if (spec.event != nullptr)
        co_await *spec.event;
    finished.push_back(spec.index);
    if (spec.fail)
        throw std::runtime_error("job " + std::to_string(spec.index));
}

task<int> tracked_job(tracked, manual_event* event, int value) {
    if (event != nullptr)
        co_await *event;
    co_return value;
}

/// The message of the exception `t` finished with; fails if it has none.
template <typename T>
std::string exception_message(task<T>& t) {
    REQUIRE(t.is_ready());
    try {
        (void)task_access::take_result(t);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    FAIL("the task finished without an exception");
    return {};
}

/// One randomised round: `count` jobs, each suspending or not and failing or
/// not at random, released in a random order. Checks that the when_all
/// finishes exactly when the last job does, that every job ran to the end,
/// and the results (or the lowest-indexed exception).
template <bool Void>
void random_round(std::mt19937_64& rng, int count, int fail_one_in) {
    std::vector<manual_event> events(static_cast<std::size_t>(count));
    std::vector<int> finished;
    std::vector<int> suspended;
    int first_failure = -1;
    std::vector<task<std::conditional_t<Void, void, int>>> tasks;
    for (int i = 0; i < count; ++i) {
        job_spec spec{i, nullptr, fail_one_in > 0 && rng() % fail_one_in == 0};
        if (rng() % 2 == 0) {
            spec.event = &events[static_cast<std::size_t>(i)];
            suspended.push_back(i);
        }
        if (spec.fail && first_failure < 0)
            first_failure = i;
        if constexpr (Void)
            tasks.push_back(void_job(spec, finished));
        else
            tasks.push_back(job(spec, finished));
    }
    auto all = when_all(std::move(tasks));
    task_access::handle(all).resume();

    // The jobs that did not suspend finished during the start, in order.
    std::vector<int> expected_finish_order;
    for (int i = 0; i < count; ++i)
        if (std::find(suspended.begin(), suspended.end(), i) == suspended.end())
            expected_finish_order.push_back(i);
    CHECK(finished == expected_finish_order);

    std::shuffle(suspended.begin(), suspended.end(), rng);
    for (int i : suspended) {
        REQUIRE_FALSE(all.is_ready());
        events[static_cast<std::size_t>(i)].set();
        expected_finish_order.push_back(i);
    }
    REQUIRE(all.is_ready());
    CHECK(finished == expected_finish_order);

    if (first_failure >= 0) {
        CHECK(exception_message(all) == "job " + std::to_string(first_failure));
    } else if constexpr (Void) {
        task_access::take_result(all);
    } else {
        const std::vector<int> results = task_access::take_result(all);
        REQUIRE(results.size() == static_cast<std::size_t>(count));
        for (int i = 0; i < count; ++i)
            CHECK(results[static_cast<std::size_t>(i)] == i * 10);
    }
}

} // namespace

TEST_CASE("when_all returns results in input order", "[when_all]") {
    std::vector<int> finished;
    std::vector<task<int>> tasks;
    for (int i = 0; i < 10; ++i)
        tasks.push_back(job({i}, finished));
    task<std::vector<int>> all = when_all(std::move(tasks));
    // when_all is a task like any other: nothing runs before it is awaited.
    CHECK(finished.empty());
    const std::vector<int> results = run_sync(all);
    CHECK(results == std::vector<int>{0, 10, 20, 30, 40, 50, 60, 70, 80, 90});
    CHECK(finished == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("when_all of nothing finishes at once", "[when_all]") {
    CHECK(run_sync(when_all(std::vector<task<int>>{})).empty());
    run_sync(when_all(std::vector<task<>>{}));
}

TEST_CASE("when_all of one task", "[when_all]") {
    std::vector<int> finished;
    std::vector<task<int>> tasks;
    tasks.push_back(job({7}, finished));
    CHECK(run_sync(when_all(std::move(tasks))) == std::vector<int>{70});
}

TEST_CASE("when_all runs 100,000 synchronously completing tasks", "[when_all]") {
    // Each child is started from when_all's loop and returns to it, so the
    // stack does not grow with the number of tasks.
    constexpr int count = 100000;
    std::vector<int> finished;
    finished.reserve(count);
    std::vector<task<int>> tasks;
    for (int i = 0; i < count; ++i)
        tasks.push_back(job({i}, finished));
    const std::vector<int> results = run_sync(when_all(std::move(tasks)));
    REQUIRE(results.size() == count);
    for (int i = 0; i < count; ++i)
        REQUIRE(results[static_cast<std::size_t>(i)] == i * 10);
    CHECK(finished.size() == count);

    std::vector<task<>> void_tasks;
    finished.clear();
    for (int i = 0; i < count; ++i)
        void_tasks.push_back(void_job({i}, finished));
    run_sync(when_all(std::move(void_tasks)));
    CHECK(finished.size() == count);
}

TEST_CASE("when_all runs 100,000 suspended tasks released in order", "[when_all]") {
    constexpr int count = 100000;
    std::vector<manual_event> events(count);
    std::vector<int> finished;
    std::vector<task<int>> tasks;
    for (int i = 0; i < count; ++i)
        tasks.push_back(job({i, &events[static_cast<std::size_t>(i)]}, finished));
    auto all = when_all(std::move(tasks));
    task_access::handle(all).resume();
    CHECK(finished.empty());
    for (auto& event : events) {
        REQUIRE_FALSE(all.is_ready());
        event.set();
    }
    REQUIRE(all.is_ready());
    const std::vector<int> results = task_access::take_result(all);
    REQUIRE(results.size() == count);
    for (int i = 0; i < count; ++i)
        REQUIRE(results[static_cast<std::size_t>(i)] == i * 10);
}

TEST_CASE("when_all keeps input order when tasks finish in a scrambled order", "[when_all]") {
    std::mt19937_64 rng(icmpengine::testing::test_seed("when_all_order"));
    SECTION("1,000 tasks, half of them suspended") {
        random_round<false>(rng, 1000, 0);
    }
    SECTION("many small rounds") {
        for (int round = 0; round < 200; ++round)
            random_round<false>(rng, static_cast<int>(rng() % 40), 0);
    }
    SECTION("task<void>") {
        for (int round = 0; round < 200; ++round)
            random_round<true>(rng, static_cast<int>(rng() % 40), 0);
    }
}

TEST_CASE("when_all finishes every task and rethrows the lowest-indexed exception", "[when_all]") {
    SECTION("tasks that fail without suspending") {
        std::vector<int> finished;
        std::vector<task<int>> tasks;
        for (int i = 0; i < 10; ++i)
            tasks.push_back(job({i, nullptr, i == 3 || i == 7}, finished));
        auto all = when_all(std::move(tasks));
        task_access::handle(all).resume();
        CHECK(exception_message(all) == "job 3");
        CHECK(finished == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    }
    SECTION("a higher index failing first does not win") {
        // Job 4 fails at once, job 8 fails next, job 1 fails last; the others
        // succeed, some of them after all three failures.
        std::vector<manual_event> events(10);
        std::vector<int> finished;
        std::vector<task<int>> tasks;
        for (int i = 0; i < 10; ++i) {
            manual_event* event = i == 4 ? nullptr : &events[static_cast<std::size_t>(i)];
            tasks.push_back(job({i, event, i == 1 || i == 4 || i == 8}, finished));
        }
        auto all = when_all(std::move(tasks));
        task_access::handle(all).resume();
        CHECK(finished == std::vector<int>{4});
        for (int i : {8, 1, 0, 2, 3, 5, 6, 9, 7}) {
            REQUIRE_FALSE(all.is_ready());
            events[static_cast<std::size_t>(i)].set();
        }
        REQUIRE(all.is_ready());
        CHECK(finished == std::vector<int>{4, 8, 1, 0, 2, 3, 5, 6, 9, 7});
        CHECK(exception_message(all) == "job 1");
    }
    SECTION("an awaiting coroutine can catch it") {
        std::vector<int> finished;
        auto outer = [&]() -> task<std::string> {
            std::vector<task<>> tasks;
            for (int i = 0; i < 5; ++i)
                tasks.push_back(void_job({i, nullptr, i >= 2}, finished));
            try {
                co_await when_all(std::move(tasks));
            } catch (const std::runtime_error& e) {
                co_return e.what();
            }
            co_return "nothing thrown";
        };
        CHECK(run_sync(outer()) == "job 2");
        CHECK(finished.size() == 5);
    }
    SECTION("randomised") {
        std::mt19937_64 rng(icmpengine::testing::test_seed("when_all_exceptions"));
        for (int round = 0; round < 200; ++round) {
            const int count = static_cast<int>(rng() % 40);
            random_round<false>(rng, count, 4);
            random_round<true>(rng, count, 4);
        }
    }
}

TEST_CASE("when_all of task<void>", "[when_all]") {
    manual_event event;
    std::vector<int> finished;
    std::vector<task<>> tasks;
    tasks.push_back(void_job({0, &event}, finished));
    tasks.push_back(void_job({1}, finished));
    task<> all = when_all(std::move(tasks));
    task_access::handle(all).resume();
    CHECK(finished == std::vector<int>{1});
    CHECK_FALSE(all.is_ready());
    event.set();
    REQUIRE(all.is_ready());
    task_access::take_result(all);
    CHECK(finished == std::vector<int>{1, 0});
}

TEST_CASE("when_all passes move-only results through", "[when_all]") {
    auto make = [](int value) -> task<std::unique_ptr<int>> {
        co_return std::make_unique<int>(value);
    };
    std::vector<task<std::unique_ptr<int>>> tasks;
    for (int i = 0; i < 3; ++i)
        tasks.push_back(make(i));
    const std::vector<std::unique_ptr<int>> results = run_sync(when_all(std::move(tasks)));
    REQUIRE(results.size() == 3);
    for (int i = 0; i < 3; ++i) {
        REQUIRE(results[static_cast<std::size_t>(i)] != nullptr);
        CHECK(*results[static_cast<std::size_t>(i)] == i);
    }
}

TEST_CASE("when_all of a result type without a default constructor", "[when_all]") {
    // Such results cannot go into an array as each task ends
    // (detail::group_takes_results): they wait in the tasks' frames.
    struct named {
        explicit named(int v) : value(v) {}
        int value;
    };
    static_assert(!icmpengine::detail::group_takes_results<named>);
    static_assert(icmpengine::detail::group_takes_results<int>);
    manual_event gate;
    auto make = [](manual_event& g, int value) -> task<named> {
        if (value % 2 == 0)
            co_await g;
        if (value == 5)
            throw std::runtime_error("five");
        co_return named(value);
    };
    auto start = [&](int n) {
        std::vector<task<named>> tasks;
        for (int i = 0; i < n; ++i)
            tasks.push_back(make(gate, i));
        auto all = when_all(std::move(tasks));
        task_access::handle(all).resume();
        return all;
    };
    SECTION("all succeed, in input order, suspended or not") {
        auto all = start(4);
        CHECK_FALSE(all.is_ready()); // tasks 0 and 2 wait for the gate
        gate.set();
        REQUIRE(all.is_ready());
        const std::vector<named> results = task_access::take_result(all);
        REQUIRE(results.size() == 4);
        for (int i = 0; i < 4; ++i)
            CHECK(results[static_cast<std::size_t>(i)].value == i);
    }
    SECTION("a failure is rethrown") {
        auto all = start(7);
        gate.set();
        CHECK(exception_message(all) == "five");
    }
}

TEST_CASE("when_all nests inside an awaiting coroutine", "[when_all]") {
    manual_event event;
    std::vector<int> finished;
    auto group = [&](int first) -> task<int> {
        std::vector<task<int>> tasks;
        for (int i = first; i < first + 3; ++i)
            tasks.push_back(job({i, i % 2 == 0 ? &event : nullptr}, finished));
        int sum = 0;
        for (int v : co_await when_all(std::move(tasks)))
            sum += v;
        co_return sum;
    };
    std::vector<task<int>> groups;
    groups.push_back(group(0));
    groups.push_back(group(3));
    auto all = when_all(std::move(groups));
    task_access::handle(all).resume();
    CHECK_FALSE(all.is_ready());
    event.set();
    REQUIRE(all.is_ready());
    CHECK(task_access::take_result(all) == std::vector<int>{30, 120});
}

TEST_CASE("when_all frees every frame", "[when_all]") {
    int alive = 0;
    SECTION("the tasks' frames are freed before when_all returns") {
        manual_event event;
        std::vector<task<int>> tasks;
        for (int i = 0; i < 4; ++i)
            tasks.push_back(tracked_job(tracked{alive}, i % 2 == 0 ? &event : nullptr, i));
        CHECK(alive == 4);
        int alive_after = -1;
        auto awaiting = [&](std::vector<task<int>> ts) -> task<int> {
            const std::vector<int> results = co_await when_all(std::move(ts));
            alive_after = alive;
            co_return results[3];
        };
        auto outer = awaiting(std::move(tasks));
        task_access::handle(outer).resume();
        event.set();
        REQUIRE(outer.is_ready());
        CHECK(task_access::take_result(outer) == 3);
        CHECK(alive_after == 0);
    }
    SECTION("destroying a when_all that is still waiting frees everything") {
        manual_event event;
        std::vector<int> finished;
        {
            std::vector<task<int>> tasks;
            for (int i = 0; i < 4; ++i)
                tasks.push_back(tracked_job(tracked{alive}, i % 2 == 0 ? &event : nullptr, i));
            auto all = when_all(std::move(tasks));
            task_access::handle(all).resume();
            CHECK_FALSE(all.is_ready());
            // The two that did not suspend are done: their results were
            // taken and their frames freed as they ended. The two waiting
            // belong to when_all.
            CHECK(alive == 2);
        }
        // Never set: the event's waiters are gone with the frames.
        CHECK(alive == 0);
    }
    CHECK(alive == 0);
}

TEST_CASE("a task that finishes an earlier one while when_all starts them", "[when_all]") {
    // Task 0 waits for an event that task 1 sets, so task 0 ends inside
    // when_all's loop that starts the tasks, before task 2 has started: the
    // count of unfinished tasks reaches the last one's only once that loop
    // is done. when_all must neither finish early (reading task 2 before it
    // ran) nor suspend for ever.
    manual_event event;
    std::vector<int> finished;
    auto setter = [](manual_event& e, std::vector<int>& fin) -> task<int> {
        e.set();
        fin.push_back(1);
        co_return 10;
    };
    SECTION("all of them synchronously") {
        std::vector<task<int>> tasks;
        tasks.push_back(job({0, &event}, finished));
        tasks.push_back(setter(event, finished));
        tasks.push_back(job({2}, finished));
        CHECK(run_sync(when_all(std::move(tasks))) == std::vector<int>{0, 10, 20});
        CHECK(finished == std::vector<int>{0, 1, 2});
    }
    SECTION("the last task finishes all the others") {
        std::vector<task<int>> tasks;
        for (int i = 0; i < 5; ++i)
            tasks.push_back(job({i, &event}, finished));
        tasks.push_back(setter(event, finished));
        CHECK(run_sync(when_all(std::move(tasks))) == std::vector<int>{0, 10, 20, 30, 40, 10});
        CHECK(finished == std::vector<int>{0, 1, 2, 3, 4, 1});
    }
    SECTION("and one more still waits") {
        manual_event later;
        std::vector<task<int>> tasks;
        tasks.push_back(job({0, &event}, finished));
        tasks.push_back(setter(event, finished));
        tasks.push_back(job({2, &later}, finished));
        auto all = when_all(std::move(tasks));
        task_access::handle(all).resume();
        CHECK(finished == std::vector<int>{0, 1});
        REQUIRE_FALSE(all.is_ready());
        later.set();
        REQUIRE(all.is_ready());
        CHECK(task_access::take_result(all) == std::vector<int>{0, 10, 20});
    }
}

TEST_CASE("when_all frees every task's frame before an exception reaches its awaiter",
          "[when_all]") {
    int alive = 0;
    int ran = 0;
    auto counted = [](tracked, int& ran_, manual_event* e, bool fail) -> task<int> {
        if (e != nullptr)
            co_await *e;
        ++ran_;
        if (fail)
            throw std::runtime_error("failed");
        co_return 1;
    };
    manual_event event;
    std::vector<task<int>> tasks;
    for (int i = 0; i < 20; ++i)
        tasks.push_back(counted(tracked{alive}, ran, i % 3 == 0 ? &event : nullptr, i % 4 == 1));
    CHECK(alive == 20);
    int alive_in_catch = -1;
    int ran_in_catch = -1;
    auto awaiting = [&](std::vector<task<int>> ts) -> task<> {
        try {
            (void)co_await when_all(std::move(ts));
        } catch (const std::runtime_error&) {
            alive_in_catch = alive;
            ran_in_catch = ran;
        }
    };
    auto outer = awaiting(std::move(tasks));
    task_access::handle(outer).resume();
    CHECK(ran == 13); // the 7 with i % 3 == 0 are waiting
    REQUIRE_FALSE(outer.is_ready());
    event.set();
    REQUIRE(outer.is_ready());
    task_access::take_result(outer);
    CHECK(ran_in_catch == 20);
    CHECK(alive_in_catch == 0);
}

TEST_CASE("destroying a waiting when_all frees failed, finished and waiting tasks alike",
          "[when_all]") {
    // Under AddressSanitizer, a frame or a stored exception left behind is
    // a leak.
    int alive = 0;
    auto failing = [](tracked) -> task<int> {
        throw std::runtime_error(std::string(100, 'x')); // an exception on the heap
        co_return 0;
    };
    manual_event event;
    {
        std::vector<task<int>> tasks;
        tasks.push_back(failing(tracked{alive}));
        tasks.push_back(tracked_job(tracked{alive}, &event, 1));
        tasks.push_back(tracked_job(tracked{alive}, nullptr, 2));
        tasks.push_back(failing(tracked{alive}));
        auto all = when_all(std::move(tasks));
        task_access::handle(all).resume();
        REQUIRE_FALSE(all.is_ready());
        // Task 2 ended with a result: its frame is gone already. The failed
        // ones keep theirs (and their exceptions) until when_all ends.
        CHECK(alive == 3);
    }
    CHECK(alive == 0);
    CHECK_FALSE(event.is_set());
}
