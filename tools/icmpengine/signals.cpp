// SPDX-License-Identifier: MIT
#include "signals.hpp"

#include <atomic>
#include <csignal>

namespace icmpengine_cli {

namespace {

std::atomic<int> g_interrupts{0};
std::atomic<int> g_quit_requests{0};
static_assert(std::atomic<int>::is_always_lock_free, "used from signal handlers");

extern "C" void on_interrupt(int) {
    g_interrupts.fetch_add(1, std::memory_order_relaxed);
}
extern "C" void on_quit(int) {
    g_quit_requests.fetch_add(1, std::memory_order_relaxed);
}

} // namespace

void install_signal_handlers() {
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: a blocked io_uring_enter returns, and is retried
    sa.sa_handler = on_interrupt;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = on_quit;
    ::sigaction(SIGQUIT, &sa, nullptr);
}

int interrupts_received() noexcept {
    return g_interrupts.load(std::memory_order_relaxed);
}

int quit_requests_received() noexcept {
    return g_quit_requests.load(std::memory_order_relaxed);
}

} // namespace icmpengine_cli
