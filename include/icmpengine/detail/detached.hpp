// SPDX-License-Identifier: MIT
// icmpengine::detail::detached: the one coroutine type that runs without an
// awaiter, for an owner that joins it (engine::spawn).
#pragma once

#include <concepts>
#include <coroutine>
#include <exception>
#include <utility>

namespace icmpengine::detail {

/// What a detached coroutine reports to when it ends. Both are called on the
/// thread that ran the coroutine's last step, and must not throw.
///
/// - child_failed(e): an exception escaped the coroutine's body (called
///   just before child_finished).
/// - child_finished(h): the coroutine `h` has run to its end and is
///   suspended there. Returns whom to resume next, by symmetric transfer
///   (std::noop_coroutine() for nobody). It may destroy `h` if the owner
///   took the frame with release(); otherwise the detached object still
///   owns the frame and destroys it.
template <typename Owner>
concept detached_owner = requires(Owner& o, std::coroutine_handle<> h, std::exception_ptr e) {
    { o.child_finished(h) }
    noexcept->std::convertible_to<std::coroutine_handle<>>;
    { o.child_failed(e) }
    noexcept;
};

/// A lazy coroutine without an awaiter: it runs when resumed (start(), or
/// whoever resumes the handle that release() returns), runs to its end, and
/// then tells its owner (see detached_owner). Until released, the object
/// owns the frame and destroys it with itself, finished or not: an owner
/// that goes away while its children are suspended frees them by destroying
/// these objects. After release(), the owner decides the frame's
/// fate, typically in child_finished or when it shuts down (engine::spawn).
///
///     struct group {
///         std::size_t running = 0;
///         std::coroutine_handle<> child_finished(std::coroutine_handle<>) noexcept {
///             --running;
///             return std::noop_coroutine();
///         }
///         void child_failed(std::exception_ptr) noexcept {}
///     };
///     detached<group> child(task<void>& t) { co_await t; }
///     ...
///     group g;
///     detached<group> c = child(some_task);
///     ++g.running;
///     c.start(g); // runs to its first suspension; c still owns the frame
template <typename Owner>
class [[nodiscard]] detached {
  public:
    struct promise_type {
        Owner* m_owner = nullptr;

        detached get_return_object() noexcept {
            static_assert(detached_owner<Owner>, "Owner: see detached_owner");
            return detached{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() const noexcept { return {}; }
        auto final_suspend() const noexcept {
            struct awaiter {
                bool await_ready() const noexcept { return false; }
                std::coroutine_handle<>
                await_suspend(std::coroutine_handle<promise_type> h) const noexcept {
                    // May destroy the frame: nothing of it is touched after.
                    return h.promise().m_owner->child_finished(h);
                }
                void await_resume() const noexcept {}
            };
            return awaiter{};
        }
        void return_void() const noexcept {}
        void unhandled_exception() const noexcept {
            m_owner->child_failed(std::current_exception());
        }
    };

    detached(detached&& o) noexcept : m_handle(std::exchange(o.m_handle, {})) {}
    detached(const detached&) = delete;
    detached& operator=(const detached&) = delete;
    detached& operator=(detached&&) = delete;
    ~detached() {
        if (m_handle)
            m_handle.destroy();
    }

    /// Binds the coroutine to `owner` and runs it until its first suspension
    /// (or its end). This object keeps the frame. Call once.
    void start(Owner& owner) {
        m_handle.promise().m_owner = &owner;
        m_handle.resume();
    }

    /// Binds the coroutine to `owner` and hands its frame over, not yet
    /// started: resuming the handle starts it, and the owner destroys the
    /// frame (once finished, or whenever it gives up on it).
    std::coroutine_handle<> release(Owner& owner) noexcept {
        m_handle.promise().m_owner = &owner;
        return std::exchange(m_handle, {});
    }

  private:
    explicit detached(std::coroutine_handle<promise_type> h) noexcept : m_handle(h) {}
    std::coroutine_handle<promise_type> m_handle;
};

} // namespace icmpengine::detail
