// SPDX-License-Identifier: MIT
// The coroutine that runs beside the fan-out on the engine's thread: it
// acts on signals (signals.hpp), prints -Q's interval reports, and draws
// the progress line.
#pragma once

#include "line_output.hpp"
#include "report.hpp"

#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <cstddef>
#include <vector>

namespace icmpengine_cli {

/// Runs beside the fan-out: turns signals into stop requests and interim
/// summaries, and draws the progress line. Signals only set counters; they
/// are acted on here, on the engine's thread, within one tick. run() ends
/// when the engine stops.
struct supervisor {
    static constexpr std::chrono::milliseconds tick{25};
    static constexpr std::chrono::seconds progress_every{1};

    ie::engine& eng;
    ie::ping_fanout& fan;
    reporter& report;
    line_output& lines;
    std::chrono::steady_clock::time_point started;
    std::size_t unresolved = 0;
    /// -Q SECS (zero: none): an interval report every SECS, in count and
    /// loop modes, as fping's main loop prints them.
    std::chrono::nanoseconds report_every{0};
    /// -X N (fping 5.5's --fast-reachable; zero: off): once N targets have
    /// answered, the run ends at once, the pings in flight cancelled (fping
    /// leaves its main loop; pings without an answer are not counted).
    std::size_t stop_when_alive = 0;
    /// For -X: given_per_address[i] is how many given targets name the
    /// fan-out's target i. fping counts targets as given, so an address
    /// given under two names counts twice.
    std::vector<std::size_t> given_per_address;
    bool interrupted = false; ///< a first SIGINT/SIGTERM: no more pings sent
    bool cancelled = false;   ///< a second one: the pings in flight cancelled

    ie::task<void> run();

  private:
    /// Given targets whose address has answered (fping's num_alive).
    std::size_t given_alive() const;
};

} // namespace icmpengine_cli
