// SPDX-License-Identifier: MIT
// icmpengine::when_all: await many tasks at once.
#pragma once

#include <icmpengine/task.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <utility>
#include <vector>

namespace icmpengine {
namespace detail {

/// Starts every task as a member of `group`, then suspends until the last
/// one finishes (or does not suspend at all if they all finished
/// synchronously). No frame per task but the task's own.
template <typename T>
struct when_all_start {
    std::vector<task<T>>& m_tasks;
    task_group& m_group;

    bool await_ready() const noexcept { return m_tasks.empty(); }
    bool await_suspend(std::coroutine_handle<> awaiting) noexcept {
        m_group.m_waiter = awaiting;
        // One extra count held while starting, so that a task finishing
        // synchronously never resumes the awaiter from inside this loop.
        m_group.m_remaining = m_tasks.size() + 1;
        for (std::size_t i = 0; i < m_tasks.size(); ++i)
            task_access::start_in_group(m_tasks[i], m_group, i);
        return --m_group.m_remaining != 0;
    }
    void await_resume() const noexcept {}
};

/// If a task failed, rethrows the exception of the lowest-indexed one,
/// after freeing every task's frame.
template <typename T>
void rethrow_first_failure(std::vector<task<T>>& tasks, const task_group& group) {
    if (group.m_first_failure == task_group::none)
        return;
    try {
        task_access::take_result(tasks[group.m_first_failure]);
    } catch (...) {
        std::exception_ptr e = std::current_exception();
        tasks.clear();
        std::rethrow_exception(e);
    }
}

} // namespace detail

/// Runs all tasks concurrently and returns their results in input order.
/// Every task runs to completion even if some throw; then the exception of
/// the lowest-indexed failing task is rethrown. No coroutine per task
/// besides the task itself: each result is moved into the returned vector
/// and the task's frame freed as the task ends (for a T that is
/// default-constructible and nothrow move-assignable; any other T waits in
/// its task's frame until all have ended).
///
///     std::vector<icmpengine::task<icmpengine::ping_result>> pings;
///     for (auto& a : targets) pings.push_back(engine.ping(a, 1s));
///     auto results = co_await icmpengine::when_all(std::move(pings));
template <typename T>
task<std::vector<T>> when_all(std::vector<task<T>> tasks) {
    detail::task_group group;
    std::vector<T> results;
    if constexpr (detail::group_takes_results<T>) {
        results.reserve(detail::result_capacity(tasks.size(), sizeof(T)));
        detail::prefault(results.data(), tasks.size() * sizeof(T), results.capacity() * sizeof(T));
        results.resize(tasks.size());
        group.m_results = results.data();
        group.m_tasks = tasks.data();
    }
    co_await detail::when_all_start<T>{tasks, group};
    detail::rethrow_first_failure(tasks, group);
    if constexpr (!detail::group_takes_results<T>) {
        results.reserve(tasks.size());
        for (task<T>& t : tasks)
            results.push_back(detail::task_access::take_result(t));
    }
    tasks.clear();
    co_return std::move(results);
}

/// As above, for tasks without a result.
inline task<void> when_all(std::vector<task<void>> tasks) {
    detail::task_group group;
    group.m_tasks = tasks.data();
    co_await detail::when_all_start<void>{tasks, group};
    detail::rethrow_first_failure(tasks, group);
    tasks.clear();
}

} // namespace icmpengine
