// SPDX-License-Identifier: MIT
// The command line of icmpengine: what it asks for (settings), and the
// parser that fills it in (getopt_long, as fping's) and rejects what cannot
// run (exit 1 as fping, or 3 for what this build cannot do).
#pragma once

#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace icmpengine_cli {

namespace ie = ::icmpengine;

// Exit codes, as fping's. fping(8) says 3 for invalid arguments, but the
// fping binaries (5.1 to 5.5) exit 1 for every invalid command line (their
// usage(1) is exit(1)); scripts see 1, so we exit 1 too. fping exits 3 only
// for an option the platform cannot do (-I without SO_BINDTODEVICE,
// --oiface without IP_PKTINFO): so do we, for the options the engine
// cannot honour (exit_unsupported).
constexpr int exit_all_alive = 0;
constexpr int exit_unreachable = 1;
constexpr int exit_unresolved = 2;
constexpr int exit_usage = 1;
constexpr int exit_unsupported = 3;
constexpr int exit_system = 4;

constexpr std::uint64_t default_max_targets = std::uint64_t{1} << 20;

enum class run_mode { single_shot, count, loop };

/// "single", "count", "loop": the names --json prints.
std::string_view to_string(run_mode m);

/// How targets are named in the output (fping -n, -d; -A is by_address).
enum class name_mode { as_given, name, rdns };

/// fping --timestamp-format (5.5): how -D stamps a line.
enum class stamp_format { unix_seconds, ctime, iso, rfc3339 };

/// Everything the command line asks for. Each field's comment names the
/// fping option it comes from; fields marked "ours" are icmpengine's own long
/// options, which change nothing unless given.
struct settings {
    // Targets.
    std::vector<std::string> targets;
    std::string file;                                ///< -f FILE ('-': stdin)
    bool generate = false;                           ///< -g
    bool ipv4 = false;                               ///< -4
    bool ipv6 = false;                               ///< -6
    bool all_addresses = false;                      ///< -m
    std::uint64_t max_targets = default_max_targets; ///< --max-targets (ours)

    // Probing.
    std::uint64_t count = 0;                    ///< -c N or -C N
    std::uint64_t vcount = 0;                   ///< -C N (also sets count)
    bool loop = false;                          ///< -l
    std::string period = "1000";                ///< -p MSEC
    std::string timeout;                        ///< -t MSEC (empty: fping's default for the mode)
    std::uint32_t retries = 3;                  ///< -r N
    double backoff = 1.5;                       ///< -B N (1.0 .. 5.0)
    std::string interval;                       ///< -i MSEC (empty: fping's default, 10 ms)
    double rate = 0;                            ///< --rate PPS (ours)
    std::uint32_t size = 56;                    ///< -b BYTES
    bool random_data = false;                   ///< -R
    unsigned dscp = 0;                          ///< --dscp (ours)
    std::string tos;                            ///< -O N
    unsigned ttl = 0;                           ///< -H N
    std::vector<std::string> sources;           ///< -S ADDRESS
    std::string interface;                      ///< -I IFACE
    std::string oiface;                         ///< --oiface IFACE (fping 5.5)
    bool dont_fragment = false;                 ///< -M
    std::uint32_t fwmark = 0;                   ///< -k N
    bool icmp_timestamp = false;                ///< --icmp-timestamp
    bool check_source = false;                  ///< --check-source
    std::chrono::nanoseconds seqmap_timeout{0}; ///< --seqmap-timeout MSEC (no effect: no seqmap)

    // Output.
    bool quiet = false;                                         ///< -q (also set by -Q)
    std::chrono::nanoseconds report_interval{0};                ///< -Q SECS (0: none)
    bool cumulative = false;                                    ///< -Q SECS,cumulative
    bool alive = false;                                         ///< -a
    bool unreachable = false;                                   ///< -u
    bool by_address = false;                                    ///< -A (in given_target::name)
    name_mode names = name_mode::as_given;                      ///< -n / -d (likewise)
    bool timestamps = false;                                    ///< -D
    stamp_format timestamp_format = stamp_format::unix_seconds; ///< --timestamp-format
    bool elapsed = false;                                       ///< -e
    bool outage = false;                                        ///< -o
    bool netdata = false;                                       ///< -N
    bool stats = false;                                         ///< -s
    bool json = false;               ///< -J / --json: fping's JSON objects
    bool json_lines = false;         ///< --json-lines (ours): icmpengine.schema.json
    bool extended_summary = false;   ///< --extended-summary (ours): stddev, duplicates, ...
    bool print_ttl = false;          ///< --print-ttl
    bool print_tos = false;          ///< --print-tos
    bool print_srcaddr = false;      ///< --print-srcaddr
    std::uint32_t min_reachable = 0; ///< -x N / -X N
    bool fast_reachable = false;     ///< -X N
    /// The name messages start with: "fping" (or "fping6", which implies -6)
    /// when argv[0]'s base name is that, else "icmpengine".
    std::string program = "icmpengine";

    // Derived.
    run_mode mode = run_mode::single_shot; ///< count: -c or -C; loop: -l
    bool vector_output = false;            ///< -C given (anywhere, as fping)
    std::chrono::nanoseconds period_ns{0}; ///< -p (default 1000 ms)
    /// -t, else fping's: 500 ms, or with -c/-C/-l the period up to 2 s.
    std::chrono::nanoseconds timeout_ns{0};
    /// Least time between any two pings: -i, --rate, else fping's 10 ms.
    std::chrono::nanoseconds pace{0};
    ie::engine_config engine;
};

/// A command-line error found after parsing: exit_usage (1) with this
/// message, after the program name.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// `text` made fit for a one-line message: control bytes, DEL and bytes
/// above 0x7f as \xNN, and cut after 64 bytes of input with "...".
std::string printable(std::string_view text);

/// "250" (milliseconds, as fping takes them: strtod, so "0.5", "1e3" too),
/// or a number with a unit (ours): "250ms", "1.5s", "100us", "2000ns".
/// std::nullopt if the text is none of these, negative, or longer than
/// ~31 years (duration_out_of_range tells which).
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

/// True if `text` is a number (with or without a unit) too large for
/// parse_duration: "out of range" rather than "not a duration".
bool duration_out_of_range(std::string_view text);

/// Parses the command line into `s`, derived settings included. Returns the
/// exit code when the program ends here: 0 after -h or -v (printed to
/// stdout), exit_usage or exit_unsupported after an invalid command line
/// (the reason printed to stderr, one line, starting with s.program).
/// std::nullopt: `s` is ready to run.
std::optional<int> parse_command_line(int argc, char** argv, settings& s);

} // namespace icmpengine_cli
