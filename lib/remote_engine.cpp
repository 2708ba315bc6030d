// SPDX-License-Identifier: MIT
// icmpengine::remote_engine and the queue behind it.
#include "engine_core.hpp"
#include "ping_arguments.hpp"
#include "remote_queue.hpp"

#include <icmpengine/errors.hpp>
#include <icmpengine/remote_engine.hpp>

#include <cerrno>
#include <cstdint>
#include <fcntl.h>
#include <memory>
#include <sys/eventfd.h>
#include <system_error>
#include <unistd.h>

namespace icmpengine {
namespace detail {

remote_queue::remote_queue() {
    m_wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m_wake_fd < 0)
        throw std::system_error(errno, std::system_category(), "eventfd for remote_engine");
}

remote_queue::~remote_queue() {
    ::close(m_wake_fd);
    if (m_notify_fd >= 0)
        ::close(m_notify_fd);
}

void remote_queue::signal_also(int fd) {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0)
        throw std::system_error(errno, std::system_category(), "remote_engine: dup");
    const std::lock_guard lock(m_mutex);
    if (m_notify_fd >= 0)
        ::close(m_notify_fd);
    m_notify_fd = copy;
}

bool remote_queue::push(work w) {
    std::unique_lock lock(m_mutex);
    if (!m_open)
        return false;
    const bool was_empty = m_queue.empty();
    m_queue.push_back(std::move(w));
    const int notify = m_notify_fd; // closed only by the destructor: no race
    lock.unlock();
    if (was_empty) {
        // The engine takes the whole queue at once, so one wake-up per
        // empty-to-non-empty change is enough. EAGAIN (the counter is at its
        // maximum) still leaves the eventfd readable.
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(m_wake_fd, &one, sizeof one);
        if (notify >= 0) [[maybe_unused]]
            const ssize_t m = ::write(notify, &one, sizeof one);
    }
    return true;
}

std::vector<remote_queue::work> remote_queue::take() {
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = ::read(m_wake_fd, &count, sizeof count);
    std::vector<work> taken;
    const std::lock_guard lock(m_mutex);
    taken.swap(m_queue);
    return taken;
}

std::vector<remote_queue::work> remote_queue::close() {
    std::vector<work> taken;
    const std::lock_guard lock(m_mutex);
    m_open = false;
    taken.swap(m_queue);
    return taken;
}

bool remote_queue::open() const {
    const std::lock_guard lock(m_mutex);
    return m_open;
}

namespace {

/// The handler of one remote ping: calls `done` and deletes itself.
class remote_ping final : public ping_handler {
  public:
    explicit remote_ping(std::function<void(const ping_result&)> done) noexcept
        : m_done(std::move(done)) {}
    void on_ping_result(std::uint64_t /*cookie*/, const ping_result& result) override {
        const std::unique_ptr<remote_ping> self(this);
        m_done(result);
    }

  private:
    std::function<void(const ping_result&)> m_done;
};

} // namespace
} // namespace detail

std::error_code remote_engine::post(std::function<void(engine&)> work) const {
    if (!m_queue || !m_queue->push(std::move(work)))
        return make_error_code(errc::stopped);
    return {};
}

std::error_code remote_engine::ping(ip_address to, std::chrono::nanoseconds timeout,
                                    std::function<void(const ping_result&)> done) const {
    return ping(to, timeout, std::move(done), ping_options{});
}

std::error_code remote_engine::ping(ip_address to, std::chrono::nanoseconds timeout,
                                    std::function<void(const ping_result&)> done,
                                    const ping_options& options) const {
    detail::check_ping_arguments(to, timeout, options);
    return post([to, timeout, options, done = std::move(done)](engine& eng) mutable {
        auto handler = std::make_unique<detail::remote_ping>(std::move(done));
        eng.start_ping(to, timeout, *handler, 0, options);
        handler.release(); // deletes itself with its result
    });
}

bool remote_engine::alive() const noexcept {
    return m_queue && m_queue->open();
}

} // namespace icmpengine
