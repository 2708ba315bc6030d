// SPDX-License-Identifier: MIT
// icmpengine's options (CLI11), their checks, and the settings derived from
// them. The man page, tools/icmpengine.1, says the same at length.
#include "options.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <system_error>

#ifndef ICMPENGINE_VERSION
#error "the build defines ICMPENGINE_VERSION (tools/meson.build)"
#endif

namespace icmpengine_cli {

using namespace std::chrono_literals;

namespace {

constexpr const char* help_footer = R"(
DURATION is a number of milliseconds as in fping ("250", "0.5"), or a number
with a unit: ns, us, ms, s ("100us", "1.5s").

Modes:
  default      single-shot: each target is pinged until it answers, at most
               1 + RETRIES times, each attempt after the previous timed out;
               prints "TARGET is alive" / "TARGET is unreachable".
  -c / -C      COUNT pings per target, one every PERIOD, without waiting for
               earlier replies; per-reply lines, then a summary per target.
  -l           as -c, until interrupted.
Pings are sent as fast as the engine goes unless -i or --rate paces them.

Summary line (stderr):
  TARGET : xmt/rcv/%loss = S/R/L%, min/avg/max = A/B/C, stddev = D,
           out-of-order = O, duplicates = U, icmp-errors = E
  xmt counts pings whose fate is known (not those cancelled in flight);
  min/avg/max/stddev (ms) are over replies only; stddev is the population
  standard deviation (as ping's mdev).

Signals: SIGINT/SIGTERM stop sending and wait for the pings in flight (up to
their timeout); a second one cancels them; then the summary is printed.
SIGQUIT prints an interim summary and carries on.

--json prints one JSON object per line (event: start, error, ping, stray,
target, summary) on stdout; the schema is icmpengine.schema.json, installed
with the program (see icmpengine(1)).

Exit status:
  0  every target answered
  1  some target did not answer
  2  some target name could not be resolved (takes precedence over 1)
  3  invalid arguments
  4  system error (ICMP socket refused, file unreadable, ...)
)";

CLI::Validator positive_integer() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            std::uint64_t value = 0;
            const auto [rest, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
            if (ec != std::errc{} || rest != text.data() + text.size() || value == 0)
                return "'" + text + "' is not a positive integer";
            return {};
        },
        "COUNT");
}

CLI::Validator duration_check(bool positive) {
    return CLI::Validator(
        [positive](std::string& text) -> std::string {
            const auto d = parse_duration(text);
            if (!d)
                return "'" + text + "' is not a duration (e.g. 250, 250ms, 1.5s, 100us)";
            if (positive && d->count() <= 0)
                return "'" + text + "' must be longer than zero";
            return {};
        },
        "DURATION");
}

/// "0x20", "32": fping -O takes decimal or hexadecimal.
unsigned parse_tos(const std::string& text) {
    unsigned value = 0;
    const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
    const char* first = text.data() + (hex ? 2 : 0);
    const char* last = text.data() + text.size();
    const auto [rest, ec] = std::from_chars(first, last, value, hex ? 16 : 10);
    if (ec != std::errc{} || rest != last || first == last || value > 255)
        throw usage_error("-O/--tos: '" + text + "' is not a TOS byte (0..255, decimal or 0x hex)");
    if (value & 3)
        throw usage_error("-O/--tos: '" + text +
                          "' sets the two ECN bits; only the DSCP (upper six bits) can be set");
    return value >> 2;
}

/// The mode, the durations and the pace the options ask for.
void derive_timing(settings& s, const CLI::App& app) {
    auto given = [&](const char* name) { return app.get_option(name)->count() > 0; };
    if (given("--count")) {
        s.mode = run_mode::count;
    } else if (given("--vcount")) {
        s.mode = run_mode::count;
        s.vector_output = true;
        s.count = s.vcount;
    } else if (s.loop) {
        s.mode = run_mode::loop;
    }
    s.period_ns = *parse_duration(s.period);
    if (!s.timeout.empty())
        s.timeout_ns = *parse_duration(s.timeout);
    else if (s.mode == run_mode::single_shot)
        s.timeout_ns = 500ms; // fping's default
    else
        s.timeout_ns = std::min<std::chrono::nanoseconds>(s.period_ns, 2s); // as fping
    if (!s.interval.empty())
        s.pace = *parse_duration(s.interval);
    else if (s.rate > 0)
        s.pace = std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(1e9 / s.rate)));
}

/// The engine configuration the packet options ask for.
void derive_engine(settings& s, const CLI::App& app) {
    auto given = [&](const char* name) { return app.get_option(name)->count() > 0; };
    ie::engine_config& e = s.engine;
    if (given("--dscp"))
        e.dscp = static_cast<std::uint8_t>(s.dscp);
    if (given("--tos"))
        e.dscp = static_cast<std::uint8_t>(parse_tos(s.tos));
    e.ttl = static_cast<std::uint8_t>(s.ttl);
    e.dont_fragment = s.dont_fragment;
    e.interface = s.interface;
    for (const std::string& text : s.sources) {
        const auto a = ie::ip_address::try_parse(text);
        if (!a)
            throw usage_error("-S/--src: '" + text + "' is not an IPv4 or IPv6 address");
        auto& slot = a->is_v4() ? e.source_v4 : e.source_v6;
        if (slot)
            throw usage_error("-S/--src: '" + text + "': a source address for IPv" +
                              (a->is_v4() ? "4" : "6") + " was given already (" +
                              slot->to_string() + ")");
        slot = *a;
    }
}

/// Fills in the derived settings and the engine configuration; throws
/// usage_error for combinations CLI11 cannot check.
void derive(settings& s, const CLI::App& app) {
    derive_timing(s, app);
    derive_engine(s, app);
    if (s.generate && !s.file.empty())
        throw usage_error("-g/--generate and -f/--file cannot be combined");
    if (s.generate && s.targets.empty())
        throw usage_error("-g/--generate needs ADDRESS/PREFIX or FIRST LAST");
}

void add_target_options(CLI::App& app, settings& s) {
    app.add_option("targets", s.targets,
                   "Addresses or host names; with -g, ADDRESS/PREFIX... or FIRST LAST")
        ->type_name("TARGET");
    app.add_option("-f,--file", s.file, "Read targets from FILE, one per line ('-': stdin)")
        ->type_name("FILE");
    app.add_flag("-g,--generate", s.generate,
                 "Targets are CIDR prefixes (IPv4 or IPv6) or a range FIRST LAST");
    app.add_option("--max-targets", s.max_targets, "Most addresses -g may expand to")
        ->capture_default_str()
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 24));
    auto* v4 = app.add_flag("-4,--ipv4", s.ipv4, "Only IPv4 addresses and name resolution");
    auto* v6 = app.add_flag("-6,--ipv6", s.ipv6, "Only IPv6 addresses and name resolution");
    v4->excludes(v6);
    app.add_flag("-m,--all", s.all_addresses, "Ping every address a name resolves to (see -A)");
}

void add_ping_options(CLI::App& app, settings& s) {
    auto* count = app.add_option("-c,--count", s.count, "Send COUNT pings to each target")
                      ->check(positive_integer());
    auto* vcount = app.add_option("-C,--vcount", s.vcount,
                                  "As -c, and report each ping's RTT per target at the end")
                       ->check(positive_integer());
    auto* loop = app.add_flag("-l,--loop", s.loop, "Ping until interrupted");
    count->excludes(vcount)->excludes(loop);
    vcount->excludes(loop);
    app.add_option("-p,--period", s.period, "Time between pings to one target (-c/-C/-l)")
        ->capture_default_str()
        ->check(duration_check(true));
    app.add_option("-t,--timeout", s.timeout,
                   "Per-ping timeout (default 500 ms; with -c/-C/-l the period, at most 2 s)")
        ->check(duration_check(true));
    app.add_option("-r,--retry", s.retries, "Retries after a timeout, single-shot mode only")
        ->capture_default_str()
        ->check(CLI::Range(0u, 1000000u));
    auto* interval =
        app.add_option("-i,--interval", s.interval,
                       "Least time between any two pings, across targets (default: unpaced)")
            ->check(duration_check(false));
    auto* rate = app.add_option("--rate", s.rate, "Pings per second at most, across targets")
                     ->type_name("PPS")
                     ->check(CLI::Range(1e-3, 1e9));
    interval->excludes(rate);
}

void add_packet_options(CLI::App& app, settings& s) {
    app.add_option("-s,-b,--size", s.size, "ICMP payload bytes")
        ->capture_default_str()
        ->check(CLI::Range(0u, 65507u));
    auto* dscp = app.add_option("--dscp", s.dscp, "DSCP (IPv4 TOS / IPv6 traffic class)")
                     ->check(CLI::Range(0u, 63u));
    auto* tos =
        app.add_option("-O,--tos", s.tos, "TOS byte, decimal or 0x hex (ECN bits must be 0)");
    dscp->excludes(tos);
    app.add_option("-H,--ttl", s.ttl, "IP TTL / IPv6 hop limit")->check(CLI::Range(1u, 255u));
    app.add_option("-S,--src", s.sources, "Source address (once per family)")
        ->type_name("ADDRESS")
        ->allow_extra_args(false); // one address per -S: never a target after it
    app.add_option("-I,--iface", s.interface, "Bind to interface IFACE (SO_BINDTODEVICE)");
    app.add_flag("-M,--dontfrag", s.dont_fragment, "Set Don't Fragment (IPv4) / IPV6_DONTFRAG");
}

void add_output_options(CLI::App& app, settings& s) {
    app.add_flag("-q,--quiet", s.quiet, "No per-ping lines, only summaries");
    app.add_flag("-a,--alive", s.alive, "List the targets that answered");
    app.add_flag("-u,--unreach", s.unreachable, "List the targets that did not answer");
    app.add_flag("-A,--addr", s.by_address, "Show targets by address, not by name");
    app.add_flag("-D,--timestamp", s.timestamps, "Unix time before each per-ping line");
    app.add_flag("-e,--elapsed", s.elapsed, "Show the RTT on 'is alive' lines");
    app.add_flag("--stats", s.stats, "Print totals at the end (as fping -s)");
    app.add_flag("--json", s.json, "JSON Lines on stdout (schema: icmpengine.schema.json)");
}

} // namespace

std::string_view to_string(run_mode m) {
    switch (m) {
    case run_mode::single_shot:
        return "single";
    case run_mode::count:
        return "count";
    case run_mode::loop:
        return "loop";
    }
    return "?";
}

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
    double value = 0;
    const char* begin = text.data();
    const char* end = text.data() + text.size();
    const auto [rest, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc{} || rest == begin || !std::isfinite(value) || value < 0)
        return std::nullopt;
    const std::string_view unit(rest, static_cast<std::size_t>(end - rest));
    double ns_per_unit = 0;
    if (unit.empty() || unit == "ms")
        ns_per_unit = 1e6;
    else if (unit == "s")
        ns_per_unit = 1e9;
    else if (unit == "us")
        ns_per_unit = 1e3;
    else if (unit == "ns")
        ns_per_unit = 1;
    else
        return std::nullopt;
    const double ns = value * ns_per_unit;
    if (ns > 1e18) // ~31 years: beyond any timeout the engine takes
        return std::nullopt;
    return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(ns)));
}

std::optional<int> parse_command_line(int argc, char** argv, settings& s) {
    CLI::App app{"icmpengine: ping many hosts at once over io_uring (fping-compatible options).",
                 "icmpengine"};
    app.footer(help_footer);
    app.set_version_flag("-v,--version", "icmpengine " ICMPENGINE_VERSION);
    app.get_formatter()->column_width(32);
    add_target_options(app, s);
    add_ping_options(app, s);
    add_packet_options(app, s);
    add_output_options(app, s);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "icmpengine: %s\nRun with --help for more information.\n", e.what());
        return exit_usage;
    }
    try {
        derive(s, app);
    } catch (const usage_error& e) {
        std::fprintf(stderr, "icmpengine: %s\n", e.what());
        return exit_usage;
    }
    return std::nullopt;
}

} // namespace icmpengine_cli
