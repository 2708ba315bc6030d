// SPDX-License-Identifier: MIT
// icmpengine's command line: fping's options through glibc getopt_long, their
// values and checks, and the settings derived from them. usage.cpp prints -h
// and -v; the man page, tools/icmpengine.1, says the same at length.
//
// Why getopt_long and not an option library: fping parses with optparse, a
// getopt-compatible parser, and scripts rely on its every form: bundled
// flags (-qs), values attached or apart (-c5, -c 5, --count=5, --count 5),
// options after the targets, "--" ending the options, no abbreviated long
// names. getopt_long in "-" mode (arguments returned in order) does the
// same; the messages are written here to read as fping's.
#include "options.hpp"
#include "option_values.hpp"
#include "usage.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <getopt.h>

namespace icmpengine_cli {

using namespace std::chrono_literals;

namespace {

// Long-only options: codes above any character.
enum long_only : int {
    opt_timestamp_format = 256,
    opt_oiface,
    opt_icmp_timestamp,
    opt_check_source,
    opt_print_tos,
    opt_print_ttl,
    opt_print_srcaddr,
    opt_seqmap_timeout,
    // Ours (change nothing unless given).
    opt_rate,
    opt_dscp,
    opt_max_targets,
    opt_json_lines,
    opt_extended_summary,
};

// fping 5.5's long names (src/fping.c), then ours. -T has no long name.
constexpr option long_options[] = {
    {"ipv4", no_argument, nullptr, '4'},
    {"ipv6", no_argument, nullptr, '6'},
    {"alive", no_argument, nullptr, 'a'},
    {"addr", no_argument, nullptr, 'A'},
    {"size", required_argument, nullptr, 'b'},
    {"backoff", required_argument, nullptr, 'B'},
    {"count", required_argument, nullptr, 'c'},
    {"vcount", required_argument, nullptr, 'C'},
    {"rdns", no_argument, nullptr, 'd'},
    {"timestamp", no_argument, nullptr, 'D'},
    {"timestamp-format", required_argument, nullptr, opt_timestamp_format},
    {"elapsed", no_argument, nullptr, 'e'},
    {"file", required_argument, nullptr, 'f'},
    {"generate", no_argument, nullptr, 'g'},
    {"help", no_argument, nullptr, 'h'},
    {"ttl", required_argument, nullptr, 'H'},
    {"interval", required_argument, nullptr, 'i'},
    {"iface", required_argument, nullptr, 'I'},
    {"oiface", required_argument, nullptr, opt_oiface},
    {"json", no_argument, nullptr, 'J'},
    {"icmp-timestamp", no_argument, nullptr, opt_icmp_timestamp},
    {"fwmark", required_argument, nullptr, 'k'},
    {"loop", no_argument, nullptr, 'l'},
    {"all", no_argument, nullptr, 'm'},
    {"dontfrag", no_argument, nullptr, 'M'},
    {"name", no_argument, nullptr, 'n'},
    {"netdata", no_argument, nullptr, 'N'},
    {"outage", no_argument, nullptr, 'o'},
    {"tos", required_argument, nullptr, 'O'},
    {"period", required_argument, nullptr, 'p'},
    {"quiet", no_argument, nullptr, 'q'},
    {"squiet", required_argument, nullptr, 'Q'},
    {"retry", required_argument, nullptr, 'r'},
    {"random", no_argument, nullptr, 'R'},
    {"stats", no_argument, nullptr, 's'},
    {"src", required_argument, nullptr, 'S'},
    {"timeout", required_argument, nullptr, 't'},
    {"unreach", no_argument, nullptr, 'u'},
    {"version", no_argument, nullptr, 'v'},
    {"reachable", required_argument, nullptr, 'x'},
    {"fast-reachable", required_argument, nullptr, 'X'},
    {"check-source", no_argument, nullptr, opt_check_source},
    {"print-tos", no_argument, nullptr, opt_print_tos},
    {"print-ttl", no_argument, nullptr, opt_print_ttl},
    {"print-srcaddr", no_argument, nullptr, opt_print_srcaddr},
    {"seqmap-timeout", required_argument, nullptr, opt_seqmap_timeout},
    {"rate", required_argument, nullptr, opt_rate},
    {"dscp", required_argument, nullptr, opt_dscp},
    {"max-targets", required_argument, nullptr, opt_max_targets},
    {"json-lines", no_argument, nullptr, opt_json_lines},
    {"extended-summary", no_argument, nullptr, opt_extended_summary},
    {nullptr, 0, nullptr, 0},
};

/// fping 5.1's largest -b (its MAX_PING_DATA, 65536 - 40 - 8), and its
/// message for more; fping 5.5 allows 65507, as the engine does.
constexpr std::uint64_t max_fping_payload = 65488;

// "-": non-options come back in order as code 1 (no permutation, whatever
// POSIXLY_CORRECT says); ":": a missing value is ':' rather than '?'.
constexpr const char* short_options = "-:46aAb:B:c:C:dDef:ghH:i:I:Jk:lmMnNoO:p:qQ:r:RsS:t:T:uvx:X:";

/// What the loop saw, beyond the settings: what was given, for the checks
/// after it.
struct given_options {
    bool count = false; // -c or -C
    bool timeout = false;
    bool size = false;
    bool interval = false;
    bool rate = false;
    bool dscp = false;
    bool tos = false;
    bool fwmark = false;
    bool oiface = false;
    bool iface = false;
    bool name = false; // -n
    bool rdns = false; // -d
    double backoff = 1.5;
    std::uint64_t size_value = 56;
    std::uint64_t ttl_value = 0;
};

/// "-c" for an option with a letter, "--oiface" for the long-only ones.
std::string label(int code) {
    if (code < 256)
        return std::string("-") + static_cast<char>(code);
    for (const option& o : long_options)
        if (o.name != nullptr && o.val == code)
            return std::string("--") + o.name;
    return "?";
}

/// -Q SECS[,cumulative] (fping 5.5): seconds; a word after a comma is
/// "cumulative" or ignored, as fping ignores it.
void set_report_interval(settings& s, const char* text) {
    const char* comma = std::strchr(text, ',');
    const std::string number(text, comma != nullptr ? comma : text + std::strlen(text));
    const double seconds = to_number(label('Q'), number.c_str());
    if (seconds * 1e9 > static_cast<double>(ie::max_ping_timeout.count()))
        fail(fmt::format("-Q: '{}' is out of range", printable(text)));
    s.report_interval = std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9));
    s.cumulative = comma != nullptr && std::strcmp(comma + 1, "cumulative") == 0;
    s.quiet = true;
}

void set_source(settings& s, const char* text) {
    const auto a = ie::ip_address::try_parse(text);
    if (!a || a->scope_id() != 0) // fping: inet_pton, which takes no scope
        fail(fmt::format("can't parse source address: {}", printable(text)));
    (a->is_v4() ? s.engine.source_v4 : s.engine.source_v6) = *a; // the last one wins, as fping
    s.sources.emplace_back(text);
}

/// -4 -6 -a -A -d -D -e -g -J -l -m -M -n -N -o -q -R -s -u: true if `code`
/// is one of them.
bool apply_flag(int code, settings& s, given_options& g) {
    switch (code) {
    case '4':
    case '6': {
        const bool v4 = code == '4';
        if ((v4 && s.ipv6) || (!v4 && s.ipv4))
            fail("can't specify both -4 and -6");
        (v4 ? s.ipv4 : s.ipv6) = true;
        return true;
    }
    case 'a':
        s.alive = true;
        return true;
    case 'A':
        s.by_address = true;
        return true;
    case 'd':
    case 'n':
        (code == 'd' ? g.rdns : g.name) = true;
        if (g.rdns && g.name)
            fail("use either one of -d or -n");
        s.names = code == 'd' ? name_mode::rdns : name_mode::name;
        return true;
    case 'D':
        s.timestamps = true;
        return true;
    case 'e':
        s.elapsed = true;
        return true;
    case 'g':
        s.generate = true;
        return true;
    case 'J':
        s.json = true;
        return true;
    case 'l':
        s.loop = true;
        return true;
    case 'm':
        s.all_addresses = true;
        return true;
    case 'M':
        s.dont_fragment = true;
        return true;
    case 'N':
        s.netdata = true;
        return true;
    case 'o':
        s.outage = true;
        return true;
    case 'q':
        s.quiet = true;
        return true;
    case 'R':
        s.random_data = true;
        return true;
    case 's':
        s.stats = true;
        return true;
    case 'u':
        s.unreachable = true;
        return true;
    default:
        return false;
    }
}

/// The options that take a value, fping's.
bool apply_value(int code, const char* arg, settings& s, given_options& g) {
    switch (code) {
    case 'b':
        g.size = true;
        g.size_value = to_unsigned(label(code), arg, 10, UINT_MAX);
        return true;
    case 'B':
        g.backoff = to_number(label(code), arg);
        return true;
    case 'c':
    case 'C':
        s.count = to_positive(label(code), arg);
        g.count = true;
        if (code == 'C')
            s.vector_output = true; // as fping: -C anywhere asks for the vectors
        return true;
    case 'f':
        s.file = arg;
        return true;
    case 'H':
        g.ttl_value = to_positive(label(code), arg);
        return true;
    case 'i':
        s.interval = arg;
        s.pace = to_duration(label(code), arg);
        g.interval = true;
        return true;
    case 'I':
        s.interface = arg;
        g.iface = true;
        return true;
    case 'k':
        s.fwmark = static_cast<std::uint32_t>(to_positive(label(code), arg));
        g.fwmark = true;
        return true;
    case 'O':
        s.tos = arg;
        g.tos = true;
        to_unsigned(label(code), arg, 0, 255);
        return true;
    case 'p':
        s.period = arg;
        s.period_ns = to_duration(label(code), arg);
        return true;
    case 'Q':
        set_report_interval(s, arg);
        return true;
    case 'r':
        s.retries = static_cast<std::uint32_t>(to_unsigned(label(code), arg, 10, UINT_MAX - 1));
        return true;
    case 'S':
        set_source(s, arg);
        return true;
    case 't':
        s.timeout = arg;
        s.timeout_ns = to_duration(label(code), arg);
        g.timeout = true;
        return true;
    case 'T':
        return true; // ignored, as fping ignores it ("select timeout", fping 2.4)
    case 'x':
    case 'X':
        s.min_reachable = static_cast<std::uint32_t>(to_positive(label(code), arg));
        s.fast_reachable = s.fast_reachable || code == 'X';
        return true;
    default:
        return false;
    }
}

/// The long-only options: fping 5.5's, then ours.
bool apply_long_only(int code, const char* arg, settings& s, given_options& g) {
    switch (code) {
    case opt_timestamp_format: {
        const std::string_view f = arg;
        if (f == "ctime")
            s.timestamp_format = stamp_format::ctime;
        else if (f == "iso")
            s.timestamp_format = stamp_format::iso;
        else if (f == "rfc3339")
            s.timestamp_format = stamp_format::rfc3339;
        else
            fail(fmt::format("--timestamp-format: '{}' is not ctime, iso or rfc3339",
                             printable(arg)));
        return true;
    }
    case opt_oiface:
        s.oiface = arg;
        g.oiface = true;
        return true;
    case opt_icmp_timestamp:
        s.icmp_timestamp = true;
        return true;
    case opt_check_source:
        s.check_source = true;
        return true;
    case opt_print_tos:
        s.print_tos = true;
        return true;
    case opt_print_ttl:
        s.print_ttl = true;
        return true;
    case opt_print_srcaddr:
        s.print_srcaddr = true;
        return true;
    case opt_seqmap_timeout:
        s.seqmap_timeout = to_duration(label(code), arg);
        return true;
    case opt_rate: {
        const double pps = to_number(label(code), arg);
        if (pps < 1e-3 || pps > 1e9)
            fail(fmt::format("--rate: '{}' is out of range (0.001 to 1000000000)", printable(arg)));
        s.rate = pps;
        g.rate = true;
        return true;
    }
    case opt_dscp:
        s.dscp = static_cast<unsigned>(to_unsigned(label(code), arg, 10, 63));
        g.dscp = true;
        return true;
    case opt_max_targets:
        s.max_targets = to_positive(label(code), arg, std::uint64_t{1} << 24);
        return true;
    case opt_json_lines:
        s.json_lines = true;
        return true;
    case opt_extended_summary:
        s.extended_summary = true;
        return true;
    default:
        return false;
    }
}

/// fping's combination checks (src/fping.c, after the option loop), in its
/// order, then ours. Each fails with fping's message and exit code.
void check_combinations(const settings& s, const given_options& g) {
    if (g.ttl_value > 255)
        fail(fmt::format("ttl {} out of range", g.ttl_value));
    if (s.alive && s.unreachable)
        fail("specify only one of a, u");
    if (g.oiface && g.iface)
        fail("specify only --oiface or -I, --iface");
    if (g.count && s.loop)
        fail("specify only one of c, l");
    if (s.json && !g.count && !s.loop)
        fail("option -J, --json requires -c, -C, or -l");
    if (s.period_ns < 1us)
        fail("-p must be >= 0.001");
    if (g.size_value > max_fping_payload)
        fail(fmt::format("data size {} not valid, must be lower than {}", g.size_value,
                         max_fping_payload));
    if (g.backoff > 5.0 || g.backoff < 1.0)
        fail(
            fmt::format("backoff factor {:.1f} not valid, must be between 1.0 and 5.0", g.backoff));
    if (s.icmp_timestamp && g.size)
        fail("cannot change ICMP Timestamp size");
    // Ours.
    if (s.json && s.json_lines)
        fail("-J/--json (fping's JSON) and --json-lines cannot be combined");
    if (g.interval && g.rate)
        fail("-i/--interval and --rate cannot be combined");
    if (g.dscp && g.tos)
        fail("--dscp and -O/--tos cannot be combined");
}

/// Options the engine cannot honour: a clear error, exit 3 (as fping for
/// an option its platform lacks), never a silent ignore.
void check_supported(const settings& s) {
    auto refuse = [](std::string_view option, std::string_view why) {
        fail(fmt::format("{} is not supported: {}", option, why), exit_unsupported);
    };
    if (s.icmp_timestamp)
        refuse("--icmp-timestamp", "icmpengine sends ICMP echo requests only (the unprivileged "
                                   "ICMP datagram sockets it uses carry nothing else)");
    if (!s.oiface.empty())
        refuse("--oiface", "the engine chooses no outgoing interface per packet (use -I)");
    if (!s.tos.empty()) {
        const unsigned long tos = std::strtoul(s.tos.c_str(), nullptr, 0);
        if ((tos & 3) != 0)
            refuse("-O with the ECN bits set",
                   "only the DSCP (the upper six bits of the TOS byte) can be set");
    }
}

/// The mode, the durations, the pace and the engine configuration.
void derive(settings& s, const given_options& g) {
    s.mode = g.count ? run_mode::count : s.loop ? run_mode::loop : run_mode::single_shot;
    if (s.vector_output)
        s.vcount = s.count;
    s.backoff = g.backoff;
    s.size = static_cast<std::uint32_t>(g.size_value);
    s.ttl = static_cast<unsigned>(g.ttl_value);
    if (!g.timeout) // fping: 500 ms; with -c/-C/-l the period, up to 2 s
        s.timeout_ns = s.mode == run_mode::single_shot
                           ? std::chrono::nanoseconds(500ms)
                           : std::min<std::chrono::nanoseconds>(s.period_ns, 2s);
    if (s.timeout_ns <= std::chrono::nanoseconds::zero())
        fail(fmt::format("-t: '{}' must be above 0", printable(s.timeout)));
    if (g.rate)
        s.pace = std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(1e9 / s.rate)));
    ie::engine_config& e = s.engine;
    if (g.dscp)
        e.dscp = static_cast<std::uint8_t>(s.dscp);
    if (g.tos)
        e.dscp = static_cast<std::uint8_t>(std::strtoul(s.tos.c_str(), nullptr, 0) >> 2);
    e.ttl = static_cast<std::uint8_t>(s.ttl);
    e.dont_fragment = s.dont_fragment;
    e.interface = s.interface;
    e.fwmark = s.fwmark;
    e.random_payload = s.random_data;
    e.check_source = s.check_source;
}

/// "fping" (or "fping6") when invoked under that name, else "icmpengine".
std::string program_name(const char* argv0) {
    const char* slash = argv0 != nullptr ? std::strrchr(argv0, '/') : nullptr;
    const std::string_view base = slash != nullptr ? slash + 1 : argv0 != nullptr ? argv0 : "";
    return base == "fping" || base == "fping6" ? std::string(base) : "icmpengine";
}

/// The message for what getopt_long refused (code '?' or ':'), as fping's
/// optparse words it: "invalid option -- 'Z'", "option requires an argument
/// -- 'count'", "option takes no arguments -- 'quiet'".
parse_failure refusal(int code, const char* element) {
    const bool is_long = std::strncmp(element, "--", 2) == 0;
    std::string name =
        is_long ? std::string(element + 2) : std::string(1, static_cast<char>(optopt));
    std::string what = "invalid option";
    if (code == ':') {
        what = "option requires an argument";
    } else if (is_long && optopt != 0) { // a known long option given "=value"
        what = "option takes no arguments";
        name = name.substr(0, name.find('='));
    }
    return {fmt::format("{} -- '{}'", what, printable(name)), exit_usage, true};
}

/// True unless the long option at `element` was abbreviated ("--coun=5"),
/// which getopt_long accepts and fping does not.
bool exact_long_name(const char* element, int index) {
    if (index < 0 || std::strncmp(element, "--", 2) != 0)
        return true;
    const std::string_view given =
        std::string_view(element + 2).substr(0, std::string_view(element + 2).find('='));
    return given == long_options[index].name;
}

/// Runs getopt_long over argv. Returns 0 after -h / -v (printed), else
/// std::nullopt; throws parse_failure.
std::optional<int> read_options(int argc, char** argv, settings& s, given_options& g) {
    opterr = 0;
    optind = 1;
    for (;;) {
        const int before = optind;
        int index = -1;
        const int code = getopt_long(argc, argv, short_options, long_options, &index);
        if (code == -1)
            break;
        const char* element = before < argc ? argv[before] : "";
        if (code == '?' || code == ':')
            throw refusal(code, element);
        if (!exact_long_name(element, index))
            throw parse_failure{fmt::format("invalid option -- '{}'", printable(element + 2)),
                                exit_usage, true};
        if (code == 1) {
            s.targets.emplace_back(optarg);
        } else if (code == 'h') {
            print_usage(stdout, s.program);
            return 0;
        } else if (code == 'v') {
            print_version(stdout, s.program);
            return 0;
        } else if (!apply_flag(code, s, g) && !apply_value(code, optarg, s, g) &&
                   !apply_long_only(code, optarg, s, g)) {
            throw parse_failure{fmt::format("invalid option -- '{}'", code), exit_usage, true};
        }
    }
    for (int i = optind; i < argc; ++i) // after "--"
        s.targets.emplace_back(argv[i]);
    return std::nullopt;
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

std::optional<int> parse_command_line(int argc, char** argv, settings& s) {
    s.program = program_name(argc > 0 ? argv[0] : nullptr);
    if (s.program == "fping6")
        s.ipv6 = true; // as fping, for its old fping6 name
    s.period_ns = 1000ms;
    s.pace = 10ms; // fping's -i default
    given_options g;
    try {
        if (const std::optional<int> done = read_options(argc, argv, s, g))
            return done;
        check_combinations(s, g);
        check_supported(s);
        derive(s, g);
    } catch (const parse_failure& f) {
        std::fprintf(stderr, "%s: %s\n", s.program.c_str(), f.message.c_str());
        if (f.hint)
            std::fprintf(stderr, "see '%s -h' for usage information\n", s.program.c_str());
        return f.code;
    }
    return std::nullopt;
}

} // namespace icmpengine_cli
