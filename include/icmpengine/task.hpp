// SPDX-License-Identifier: MIT
// icmpengine::task<T>: a lazy, move-only coroutine result.
#pragma once

#include <icmpengine/detail/allocation.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

namespace icmpengine {

template <typename T = void>
class task;

namespace detail {

/// Tasks started together without an awaiter each (when_all): each one, as
/// it ends, hands its result to the group's array (if the group has one)
/// or notes its failure, and counts the group down; the last resumes the
/// group's waiter. Exceptions stay in the failed tasks' promises.
struct task_group {
    static constexpr std::size_t none = static_cast<std::size_t>(-1);

    std::size_t m_remaining = 0;
    std::coroutine_handle<> m_waiter;
    /// A T[] indexed like the tasks, assigned as each ends while its frame
    /// is still in cache; null: the results stay in the promises.
    void* m_results = nullptr;
    /// The lowest index of a task that ended with an exception.
    std::size_t m_first_failure = none;
    /// The task<T>[] the tasks are in, indexed alike: a task whose result
    /// went to m_results is destroyed as it ends, while its frame is still
    /// in cache, and its element left empty. Null: the owner destroys them.
    void* m_tasks = nullptr;

    std::coroutine_handle<> task_finished() noexcept {
        return --m_remaining == 0 ? m_waiter : std::noop_coroutine();
    }
    void task_failed(std::size_t index) noexcept {
        if (index < m_first_failure)
            m_first_failure = index;
    }
};

/// Resumes whoever awaited the task (or, for a task of a group, whom the
/// group says), by symmetric transfer, so that long chains of tasks
/// completing synchronously do not grow the stack.
struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <typename Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
        Promise& p = h.promise();
        if (p.m_group == nullptr)
            return p.m_continuation;
        task_group& group = *p.m_group;
        if (p.hand_to_group())
            h.destroy(); // nothing of the frame is touched after this
        return group.task_finished();
    }
    void await_resume() const noexcept {}
};

struct promise_base : frame_allocation {
    std::suspend_always initial_suspend() const noexcept { return {}; }
    final_awaiter final_suspend() const noexcept { return {}; }

    std::coroutine_handle<> m_continuation = std::noop_coroutine();
    task_group* m_group = nullptr;
    std::size_t m_index = 0; ///< in m_group
};

/// Whether a group can take results of type T into an array as the tasks
/// end (task_group::m_results): T[] must be creatable up front, and
/// assigning into it must not throw.
template <typename T>
inline constexpr bool group_takes_results =
    std::is_default_constructible_v<T>&& std::is_nothrow_move_assignable_v<T>;

/// `co_return result_in_place{}`: the coroutine has already put its result
/// into its promise (engine::ping's, whose awaiter writes it there).
struct result_in_place {};

template <typename T>
struct task_promise final : promise_base {
    task<T> get_return_object() noexcept;
    void return_value(result_in_place) const noexcept {}
    template <typename U>
    requires std::is_convertible_v<U&&, T>
    void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        m_result.template emplace<1>(std::forward<U>(value));
    }
    void unhandled_exception() noexcept { m_result.template emplace<2>(std::current_exception()); }

    bool failed() const noexcept { return m_result.index() == 2; }
    /// Returns true if the frame is to be destroyed now: its result was
    /// taken and its task object emptied.
    bool hand_to_group() noexcept;
    T take_result() {
        if (m_result.index() == 2)
            std::rethrow_exception(std::get<2>(m_result));
        return std::move(std::get<1>(m_result));
    }

    std::variant<std::monostate, T, std::exception_ptr> m_result;
};

template <>
struct task_promise<void> final : promise_base {
    task<void> get_return_object() noexcept;
    void return_void() const noexcept {}
    void unhandled_exception() noexcept { m_exception = std::current_exception(); }
    bool failed() const noexcept { return static_cast<bool>(m_exception); }
    bool hand_to_group() noexcept;
    void take_result() const {
        if (m_exception)
            std::rethrow_exception(m_exception);
    }

    std::exception_ptr m_exception;
};

struct task_access;

} // namespace detail

/// A lazily started coroutine producing a T (or an exception).
///
/// Nothing runs until the task is awaited (`co_await t`) or handed to
/// `engine::run` / `engine::spawn`. When it finishes, its awaiter is resumed
/// by symmetric transfer; an exception thrown inside is rethrown from the
/// `co_await`. A task is move-only and owns its coroutine frame: destroying a
/// task that was never awaited destroys the coroutine without running it.
///
///     icmpengine::task<int> answer() { co_return 42; }
///     icmpengine::task<> user() { int v = co_await answer(); }
template <typename T>
class [[nodiscard]] task {
  public:
    using promise_type = detail::task_promise<T>;
    using value_type = T;

    task() noexcept = default;
    explicit task(std::coroutine_handle<promise_type> h) noexcept : m_handle(h) {}
    task(task&& other) noexcept : m_handle(std::exchange(other.m_handle, {})) {}
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            if (m_handle)
                m_handle.destroy();
            m_handle = std::exchange(other.m_handle, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() {
        if (m_handle)
            m_handle.destroy();
    }

    /// True if this task holds a coroutine (it was not moved from).
    bool valid() const noexcept { return static_cast<bool>(m_handle); }
    /// True once the coroutine has run to completion.
    bool is_ready() const noexcept { return m_handle && m_handle.done(); }

    /// Starts the task and suspends until it finishes. Precondition: valid().
    auto operator co_await() && noexcept {
        struct awaiter {
            std::coroutine_handle<promise_type> m_handle;
            bool await_ready() const noexcept { return m_handle.done(); }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
                m_handle.promise().m_continuation = awaiting;
                return m_handle;
            }
            T await_resume() { return m_handle.promise().take_result(); }
        };
        return awaiter{m_handle};
    }
    auto operator co_await() & noexcept { return std::move(*this).operator co_await(); }

  private:
    friend struct detail::task_access;
    std::coroutine_handle<promise_type> m_handle;
};

namespace detail {

template <typename T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>{std::coroutine_handle<task_promise<T>>::from_promise(*this)};
}
inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>{std::coroutine_handle<task_promise<void>>::from_promise(*this)};
}

/// For the engine: start a task without an awaiting coroutine and collect its
/// result once done.
struct task_access {
    template <typename T>
    static std::coroutine_handle<> handle(task<T>& t) noexcept {
        return t.m_handle;
    }
    template <typename T>
    static T take_result(task<T>& t) {
        return t.m_handle.promise().take_result();
    }
    /// For a finished task: did it end with an exception?
    template <typename T>
    static bool failed(const task<T>& t) noexcept {
        return t.m_handle.promise().failed();
    }
    /// Empties `t` without destroying its frame (its promise's owner does).
    template <typename T>
    static bool release(task<T>& t) noexcept {
        return static_cast<bool>(std::exchange(t.m_handle, {}));
    }
    /// Starts `t` as member `index` of `group`: when it ends, it hands its
    /// result to the group and counts it down instead of resuming an
    /// awaiter. Precondition: t.valid().
    template <typename T>
    static void start_in_group(task<T>& t, task_group& group, std::size_t index) noexcept {
        t.m_handle.promise().m_group = &group;
        t.m_handle.promise().m_index = index;
        t.m_handle.resume();
    }
};

template <typename T>
bool task_promise<T>::hand_to_group() noexcept {
    if (m_result.index() == 2) {
        m_group->task_failed(m_index);
        return false;
    }
    if constexpr (group_takes_results<T>) {
        if (m_group->m_results != nullptr && m_result.index() == 1) {
            static_cast<T*>(m_group->m_results)[m_index] = std::move(std::get<1>(m_result));
            return m_group->m_tasks != nullptr &&
                   task_access::release(static_cast<task<T>*>(m_group->m_tasks)[m_index]);
        }
    }
    return false;
}

inline bool task_promise<void>::hand_to_group() noexcept {
    if (m_exception) {
        m_group->task_failed(m_index);
        return false;
    }
    return m_group->m_tasks != nullptr &&
           task_access::release(static_cast<task<void>*>(m_group->m_tasks)[m_index]);
}

} // namespace detail
} // namespace icmpengine
