// SPDX-License-Identifier: MIT
// icmpengine: an fping-class pinger for fleets, on the icmpengine library.
// The man page is tools/icmpengine.1; `icmpengine --help` says the same in
// short. Every ping goes through the library's ping_fanout; the tool parses,
// prints and handles signals.
//
// The life of one run, in order:
//  1. options.cpp    parses the command line (getopt_long, fping's options)
//                    into a `settings`, and derives the mode, the durations
//                    and the engine_config; an invalid command line exits 1
//                    here (3 for an option the engine cannot honour);
//                    usage.cpp prints -h and -v.
//  2. targets.cpp    reads the targets (arguments, -f FILE, stdin, -g) as
//                    fping does: every given target with its output name,
//                    and the distinct addresses the fan-out pings.
//  3. main.cpp       makes the reporter (report.cpp chooses: report_text.cpp
//                    and report_summary.cpp: fping's lines, or with -J
//                    report_fping_json.cpp's objects; report_json.cpp:
//                    --json-lines), reports names that did not
//                    resolve, builds the ping_fanout and the engine, and opens
//                    the sockets the targets need (exit 4 if refused).
//  4. signals.cpp    installs the SIGINT/SIGTERM/SIGQUIT handlers, which only
//                    count.
//  5. supervisor.cpp runs beside the fan-out on the engine's thread: acts on
//                    the counts (stop sending, cancel, interim summary) and
//                    draws the progress line (line_output.cpp) on a terminal.
//     The fan-out calls the reporter for every ping and stray reply.
//  6. main.cpp       when the fan-out ends: the final summary, and the exit
//                    code as fping's (0 all alive, 1 some unreachable, 2 some
//                    names unresolved).
#include "line_output.hpp"
#include "options.hpp"
#include "report.hpp"
#include "signals.hpp"
#include "supervisor.hpp"
#include "targets.hpp"

#include <icmpengine/icmpengine.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace icmpengine_cli {
namespace {

/// What the fan-out does for each target, and where it reports.
ie::fanout_options fanout_options_for(const settings& s, reporter& report) {
    ie::fanout_options options;
    options.series.count = s.mode == run_mode::single_shot ? std::uint64_t{s.retries} + 1
                           : s.mode == run_mode::loop      ? 0
                                                           : s.count;
    options.series.period = s.period_ns;
    options.series.timeout = s.timeout_ns;
    options.series.ping.payload_size = s.size;
    options.series.until_reply = s.mode == run_mode::single_shot;
    // fping: -B and the credit of a late reply apply to the default mode only
    // (with -c, -C, -l it ignores -B and drops replies older than -t).
    options.series.backoff = s.mode == run_mode::single_shot ? s.backoff : 1.0;
    options.series.credit_late_replies = s.mode == run_mode::single_shot;
    options.series.keep_results = false;
    options.series.rtt_history = s.vector_output ? static_cast<std::size_t>(s.count) : 0;
    options.pace = s.pace;
    options.on_ping = [&report](const ie::ping_event& e) { report.ping(e); };
    options.on_stray = [&report](const ie::stray_event& e) { report.stray(e); };
    return options;
}

/// Opens the sockets the targets need, so that a refusal is reported once,
/// up front, with the engine's explanation of what to fix.
std::optional<std::string> open_sockets(ie::engine& eng,
                                        const std::vector<ie::ip_address>& addresses,
                                        const std::string& logged) {
    bool need[2] = {false, false};
    for (const ie::ip_address& a : addresses)
        need[a.is_v4() ? 0 : 1] = true;
    for (int f = 0; f < 2; ++f) {
        if (!need[f])
            continue;
        const auto family = f == 0 ? ie::ip_family::v4 : ie::ip_family::v6;
        if (const std::error_code ec = eng.open(family)) {
            // The engine's log has the details (which call, which option).
            std::string why = logged.empty() ? ec.message() : logged;
            if (logged.empty() || why.find(ec.message()) == std::string::npos)
                why += ": " + ec.message();
            return fmt::format("cannot open the IPv{} ICMP socket: {}", f == 0 ? 4 : 6, why);
        }
    }
    return std::nullopt;
}

/// fping's exit code (its finish()), counted over the given targets: with
/// -x/-X N, 0 if at least N answered, else 1; otherwise 2 if a name did not
/// resolve, 1 if a target did not answer, else 0.
int exit_code_for(const settings& s, const target_set& targets,
                  std::span<const ie::series_result> series, std::size_t unresolved) {
    std::size_t alive = 0;
    for (const given_target& g : targets.given)
        alive += series[g.address].alive() ? 1 : 0;
    if (s.min_reachable != 0)
        return alive >= s.min_reachable ? exit_all_alive : exit_unreachable;
    if (unresolved > 0)
        return exit_unresolved;
    return alive == targets.given.size() ? exit_all_alive : exit_unreachable;
}

/// Pings until the fan-out ends, prints the final summary, and returns
/// the exit code.
int ping_targets(settings& s, const target_set& targets, reporter& report, line_output& lines,
                 std::size_t unresolved) {
    const std::vector<ie::ip_address>& addresses = targets.addresses;
    // Distinct addresses: the fan-out's series() are in this order.
    ie::ping_fanout fan(addresses, fanout_options_for(s, report));

    std::string engine_error; // the engine's last error message: which call failed
    s.engine.on_stray = [&fan](const ie::stray_reply& r) { fan.on_stray(r); };
    s.engine.log.sink = [&engine_error](ie::log_component, ie::log_level, std::string_view m) {
        engine_error = m;
    };
    s.engine.log.set(ie::log_component::sockets, ie::log_level::error)
        .set(ie::log_component::ring, ie::log_level::error);
    ie::engine eng(s.engine);
    if (const auto why = open_sockets(eng, addresses, engine_error)) {
        lines.err(s.program + ": " + *why);
        return exit_system;
    }

    install_signal_handlers();
    const auto started = std::chrono::steady_clock::now();
    report.start(targets.given.size());
    supervisor watch{eng,
                     fan,
                     report,
                     lines,
                     started,
                     unresolved,
                     s.mode == run_mode::single_shot ? std::chrono::nanoseconds{0}
                                                     : s.report_interval,
                     s.fast_reachable ? std::size_t{s.min_reachable} : 0,
                     std::vector<std::size_t>(addresses.size(), 0)};
    for (const given_target& g : targets.given)
        ++watch.given_per_address[g.address];
    eng.spawn(watch.run());
    eng.run(fan.run(eng));
    eng.stop(); // ends the supervisor
    lines.clear_progress();

    const int code = exit_code_for(s, targets, fan.series(), unresolved);
    report.summary(fan.series(), run_status{true, watch.interrupted, unresolved,
                                            std::chrono::steady_clock::now() - started, code});
    std::fflush(stdout);
    return code;
}

int run(settings& s) {
    target_set targets = read_targets(s);
    line_output lines(::isatty(STDERR_FILENO) != 0);
    const std::unique_ptr<reporter> report = make_reporter(s, targets, lines);
    for (const ie::target_failure& f : targets.failures)
        report->resolve_failure(f);
    const std::size_t unresolved = targets.failures.size();
    if (targets.addresses.empty()) {
        if (unresolved > 0)
            return exit_unresolved;
        throw usage_error(s.file.empty()  ? "no targets"
                          : s.file == "-" ? "no targets in the standard input"
                                          : "no targets in " + printable(s.file));
    }
    return ping_targets(s, targets, *report, lines, unresolved);
}

} // namespace
} // namespace icmpengine_cli

int main(int argc, char** argv) {
    using namespace icmpengine_cli;
    settings s;
    if (const std::optional<int> code = parse_command_line(argc, argv, s))
        return *code;
    try {
        return run(s);
    } catch (const usage_error& e) {
        std::fprintf(stderr, "%s: %s\n", s.program.c_str(), e.what());
        return exit_usage;
    } catch (const std::exception& e) { // std::system_error among them
        std::fprintf(stderr, "%s: %s\n", s.program.c_str(), e.what());
        return exit_system;
    }
}
