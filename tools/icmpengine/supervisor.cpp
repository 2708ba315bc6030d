// SPDX-License-Identifier: MIT
#include "supervisor.hpp"

#include "signals.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>

namespace icmpengine_cli {

std::size_t supervisor::given_alive() const {
    const std::span<const ie::series_result> series = fan.series();
    std::size_t alive = 0;
    for (std::size_t i = 0; i < series.size(); ++i)
        if (series[i].alive())
            alive += i < given_per_address.size() ? given_per_address[i] : 1;
    return alive;
}

ie::task<void> supervisor::run() {
    int quits_seen = 0;
    auto next_progress = started + progress_every;
    std::uint64_t sent_before = 0;
    auto progress_before = started;
    auto next_report = started + report_every;
    // Not `while (co_await ...)`: GCC 12 miscompiles a co_await in a loop
    // condition (tests/gcc12_co_await_condition.cpp).
    for (;;) {
        const bool slept = co_await eng.sleep_for(tick);
        if (!slept)
            break;
        // Lines reach a pipe within a tick (a consumer of -l --json sees
        // events live) without a write per line.
        std::fflush(stdout);
        const int interrupts = interrupts_received();
        if (interrupts >= 1 && !interrupted) {
            interrupted = true;
            fan.request_stop(); // pings in flight run to their timeout
        }
        if (interrupts >= 2 && !cancelled) {
            cancelled = true;
            eng.stop(); // cancels the pings in flight; wakes this sleep too
        }
        const auto now = std::chrono::steady_clock::now();
        if (const int quits = quit_requests_received(); quits != quits_seen) {
            quits_seen = quits;
            report.interval(fan.series(), run_status{false, interrupted, unresolved, now - started,
                                                     std::nullopt, false});
        }
        if (stop_when_alive > 0 && !cancelled && given_alive() >= stop_when_alive) {
            cancelled = true;
            eng.stop();
        }
        if (report_every.count() > 0 && now >= next_report) {
            report.interval(fan.series(), run_status{false, interrupted, unresolved, now - started,
                                                     std::nullopt, true});
            // As fping: reports missed while busy are skipped, not caught up.
            while (next_report <= now)
                next_report += report_every;
        }
        if (lines.progress_enabled() && now >= next_progress) {
            const ie::fanout_progress& p = fan.progress();
            const double seconds = std::chrono::duration<double>(now - progress_before).count();
            const double rate = static_cast<double>(p.sent - sent_before) / seconds;
            sent_before = p.sent;
            progress_before = now;
            next_progress = now + progress_every;
            lines.progress(fmt::format(
                "{}/{} targets done, {} alive, {} replies, {} timeouts, {} in flight, {:.0f} "
                "pings/s",
                p.targets_finished, p.targets, p.targets_alive, p.replies, p.timeouts, p.in_flight,
                rate));
        }
    }
}

} // namespace icmpengine_cli
