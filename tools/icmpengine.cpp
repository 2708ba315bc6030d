// icmpengine: an fping-class pinger for fleets, on the icmpengine library.
//
// The tool parses arguments (CLI11), prints (fping's formats, or JSON Lines
// with a schema: tools/icmpengine.schema.json) and handles signals; every
// ping goes through the library's ping_fanout. The man page is
// tools/icmpengine.1; `icmpengine --help` says the same in short.
#include <icmpengine/icmpengine.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unistd.h>
#include <vector>

#ifndef ICMPENGINE_VERSION
#error "the build defines ICMPENGINE_VERSION (tools/meson.build)"
#endif

namespace ie = icmpengine;
using namespace std::chrono_literals;
// Ordered: "event" first, then the fields in the schema's order.
using json = nlohmann::ordered_json;

namespace {

// Exit codes, as fping's (fping(8), DIAGNOSTICS).
constexpr int exit_all_alive = 0;
constexpr int exit_unreachable = 1;
constexpr int exit_unresolved = 2;
constexpr int exit_usage = 3;
constexpr int exit_system = 4;

constexpr std::uint64_t default_max_targets = std::uint64_t{1} << 20;

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

// ------------------------------------------------------------- durations

/// "250" (milliseconds, as fping takes them), "0.5", "250ms", "1.5s",
/// "100us", "2000ns". std::nullopt if the text is none of these.
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

double to_ms(std::chrono::nanoseconds d) {
    return static_cast<double>(d.count()) / 1e6;
}
double to_ms(ie::ping_statistics::rtt_duration d) {
    return d.count() / 1e6;
}

/// Milliseconds to three significant digits, as fping prints them.
std::string format_ms(double ms) {
    if (ms < 1.0)
        return fmt::format("{:.3f}", ms);
    if (ms < 10.0)
        return fmt::format("{:.2f}", ms);
    if (ms < 100.0)
        return fmt::format("{:.1f}", ms);
    if (ms < 1e6)
        return fmt::format("{:.0f}", ms);
    return fmt::format("{:.3e}", ms);
}

double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// fping's integer loss percentage.
std::uint64_t loss_percent(const ie::ping_statistics& s) {
    return s.sent() == 0 ? 0 : (s.sent() - s.received()) * 100 / s.sent();
}

// ------------------------------------------------------------- settings

enum class run_mode { single_shot, count, loop };

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

struct settings {
    std::vector<std::string> targets;
    std::string file;
    bool generate = false;
    bool ipv4 = false;
    bool ipv6 = false;
    bool all_addresses = false;
    std::uint64_t count = 0;
    std::uint64_t vcount = 0;
    bool loop = false;
    std::string period = "1000";
    std::string timeout;
    std::uint32_t retries = 3;
    std::string interval;
    double rate = 0;
    std::uint32_t size = 56;
    unsigned dscp = 0;
    std::string tos;
    unsigned ttl = 0;
    std::vector<std::string> sources;
    std::string interface;
    bool dont_fragment = false;
    bool quiet = false;
    bool alive = false;
    bool unreachable = false;
    bool by_address = false;
    bool timestamps = false;
    bool elapsed = false;
    bool json = false;
    bool stats = false;
    std::uint64_t max_targets = default_max_targets;

    // Derived.
    run_mode mode = run_mode::single_shot;
    bool vector_output = false;
    std::chrono::nanoseconds period_ns{0};
    std::chrono::nanoseconds timeout_ns{0};
    std::chrono::nanoseconds pace{0};
    ie::engine_config engine;
};

/// A command-line error found after parsing: exit 3 with this message.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

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

/// Fills in the derived settings and the engine configuration.
void derive(settings& s, const CLI::App& app) {
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
    if (s.generate && !s.file.empty())
        throw usage_error("-g/--generate and -f/--file cannot be combined");
    if (s.generate && s.targets.empty())
        throw usage_error("-g/--generate needs ADDRESS/PREFIX or FIRST LAST");
}

// ------------------------------------------------------------- targets

struct target_set {
    ie::target_list list;
    std::vector<std::string> names; ///< what to print for list.targets()[i]
};

ie::family_filter family_of(const settings& s) {
    return s.ipv4 ? ie::family_filter::v4 : s.ipv6 ? ie::family_filter::v6 : ie::family_filter::any;
}

/// Builds the target list. Malformed generator input throws usage_error;
/// an unreadable file throws std::system_error.
void collect_targets(const settings& s, target_set& out) {
    ie::target_list& list = out.list;
    try {
        if (s.generate) {
            const bool all_cidr =
                std::all_of(s.targets.begin(), s.targets.end(),
                            [](const auto& t) { return t.find('/') != std::string::npos; });
            if (all_cidr) {
                for (const std::string& t : s.targets)
                    list.add_cidr(t);
                // The cap holds per prefix (target_list) and for all of them.
                if (list.size() > s.max_targets)
                    throw usage_error(fmt::format(
                        "-g/--generate: the prefixes expand to {} addresses in all, more than "
                        "--max-targets {}",
                        list.size(), s.max_targets));
            } else if (s.targets.size() == 2) {
                list.add_range(s.targets[0], s.targets[1]);
            } else {
                std::string given;
                for (const auto& t : s.targets)
                    given += (given.empty() ? "" : " ") + t;
                throw usage_error("-g/--generate: expected ADDRESS/PREFIX... or FIRST LAST, got '" +
                                  given + "'");
            }
        } else {
            for (const std::string& t : s.targets)
                list.add_name(t);
        }
    } catch (const std::invalid_argument& e) {
        throw usage_error(e.what());
    }
    if (!s.file.empty()) {
        if (s.file == "-") {
            list.add_stream(std::cin);
        } else {
            std::ifstream in(s.file);
            if (!in)
                throw std::system_error(errno, std::generic_category(),
                                        "-f/--file: cannot open '" + s.file + "'");
            list.add_stream(in);
        }
    }
}

// ------------------------------------------------------------- output

std::atomic<int> g_interrupts{0};
std::atomic<int> g_quit_requests{0};
static_assert(std::atomic<int>::is_always_lock_free, "used from signal handlers");

extern "C" void on_interrupt(int) {
    g_interrupts.fetch_add(1, std::memory_order_relaxed);
}
extern "C" void on_quit(int) {
    g_quit_requests.fetch_add(1, std::memory_order_relaxed);
}

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

/// stdout and stderr lines, with a progress line on a terminal's stderr kept
/// out of their way: it is erased before any other line is written and
/// redrawn at the next tick. stderr is unbuffered, so each line goes out in
/// one write, and a block of lines (a summary of 65,534 targets) in one.
class line_output {
  public:
    explicit line_output(bool progress) : m_progress(progress) {}

    void out(std::string_view line) {
        clear_progress();
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fputc('\n', stdout);
    }
    void err(std::string_view line) {
        m_err.append(line);
        m_err.push_back('\n');
        if (m_holding == 0)
            flush_err();
    }
    /// While held, stderr lines are collected and written at release.
    void hold_errors() noexcept { ++m_holding; }
    void release_errors() {
        if (--m_holding == 0)
            flush_err();
    }
    bool progress_enabled() const noexcept { return m_progress; }
    void progress(std::string_view text) {
        if (!m_progress)
            return;
        std::fflush(stdout);
        std::fprintf(stderr, "\r%.*s\033[K", static_cast<int>(text.size()), text.data());
        std::fflush(stderr);
        m_shown = true;
    }
    void clear_progress() {
        if (!m_shown)
            return;
        std::fputs("\r\033[K", stderr);
        std::fflush(stderr);
        m_shown = false;
    }

  private:
    void flush_err() {
        if (m_err.empty())
            return;
        clear_progress();
        std::fflush(stdout); // keep the order of the two streams on a terminal
        std::fwrite(m_err.data(), 1, m_err.size(), stderr);
        m_err.clear();
    }

    bool m_progress;
    bool m_shown = false;
    int m_holding = 0;
    std::string m_err;
};

std::string icmp_description(const ie::ping_result& r) {
    const bool v4 = r.from.is_v4();
    if (v4 && r.icmp_type == 3) {
        static constexpr const char* codes[] = {
            "Network Unreachable",       "Host Unreachable",
            "Protocol Unreachable",      "Port Unreachable",
            "Fragmentation Needed",      "Source Route Failed",
            "Network Unknown",           "Host Unknown",
            "Source Host Isolated",      "Network Prohibited",
            "Host Prohibited",           "Network Unreachable For TOS",
            "Host Unreachable For TOS",  "Communication Prohibited",
            "Host Precedence Violation", "Precedence Cutoff"};
        if (r.icmp_code < std::size(codes))
            return codes[r.icmp_code];
        return fmt::format("Unreachable (code {})", r.icmp_code);
    }
    if (!v4 && r.icmp_type == 1) {
        static constexpr const char* codes[] = {"No Route",         "Communication Prohibited",
                                                "Beyond Scope",     "Address Unreachable",
                                                "Port Unreachable", "Source Address Failed Policy",
                                                "Reject Route"};
        if (r.icmp_code < std::size(codes))
            return codes[r.icmp_code];
        return fmt::format("Unreachable (code {})", r.icmp_code);
    }
    switch (r.status) {
    case ie::ping_status::time_exceeded:
        return "Time Exceeded";
    case ie::ping_status::packet_too_big:
        return "Packet Too Big";
    case ie::ping_status::parameter_problem:
        return "Parameter Problem";
    default:
        return fmt::format("type {} code {}", r.icmp_type, r.icmp_code);
    }
}

json ms_or_null(const std::optional<std::chrono::nanoseconds>& d) {
    return d ? json(to_ms(*d)) : json(nullptr);
}
json ms_or_null(const std::optional<ie::ping_statistics::rtt_duration>& d) {
    return d ? json(to_ms(*d)) : json(nullptr);
}

/// Everything the tool prints, in text (fping's formats) or JSON Lines.
class reporter {
  public:
    reporter(const settings& s, std::vector<std::string> names, line_output& lines)
        : m_settings(s), m_names(std::move(names)), m_lines(lines) {
        for (const std::string& n : m_names)
            m_width = std::max(m_width, n.size());
    }

    const std::string& name(std::size_t i) const { return m_names[i]; }

    void resolve_failure(const ie::target_failure& f) {
        if (m_settings.json) {
            emit({{"event", "error"},
                  {"time", unix_now()},
                  {"name", f.name},
                  {"reason", f.reason},
                  {"file", f.line > 0 ? json(m_settings.file) : json(nullptr)},
                  {"line", f.line}});
            return;
        }
        if (f.line > 0)
            m_lines.err(fmt::format("{}:{}: {}: {}",
                                    m_settings.file == "-" ? "stdin" : m_settings.file, f.line,
                                    f.name, f.reason));
        else
            m_lines.err(fmt::format("{}: {}", f.name, f.reason));
    }

    void start(std::size_t targets) {
        if (!m_settings.json)
            return;
        const settings& s = m_settings;
        const bool single = s.mode == run_mode::single_shot;
        emit({{"event", "start"},
              {"time", unix_now()},
              {"version", ICMPENGINE_VERSION},
              {"mode", to_string(s.mode)},
              {"targets", targets},
              {"count", s.mode == run_mode::count ? json(s.count) : json(nullptr)},
              {"retries", single ? json(s.retries) : json(nullptr)},
              {"period_ms", single ? json(nullptr) : json(to_ms(s.period_ns))},
              {"timeout_ms", to_ms(s.timeout_ns)},
              {"pace_ms", to_ms(s.pace)},
              {"payload_size", s.size}});
    }

    void ping(const ie::ping_event& e) {
        const ie::ping_result& r = e.result;
        const settings& s = m_settings;
        if (s.json) {
            if (s.quiet)
                return;
            const bool answered = r.status != ie::ping_status::timeout &&
                                  r.status != ie::ping_status::cancelled &&
                                  r.status != ie::ping_status::send_error;
            emit({{"event", "ping"},
                  {"time", unix_now()},
                  {"target", name(e.target)},
                  {"address", e.series.target.to_string()},
                  {"index", e.index},
                  {"sequence", r.sequence},
                  {"status", ie::to_string(r.status)},
                  {"rtt_ms", answered ? json(to_ms(r.rtt)) : json(nullptr)},
                  {"from", answered ? json(r.from.to_string()) : json(nullptr)},
                  {"bytes", r.status == ie::ping_status::reply ? json(r.bytes) : json(nullptr)},
                  {"ttl",
                   r.status == ie::ping_status::reply && r.ttl != 0 ? json(r.ttl) : json(nullptr)},
                  {"icmp_type", answered ? json(r.icmp_type) : json(nullptr)},
                  {"icmp_code", answered ? json(r.icmp_code) : json(nullptr)},
                  {"error", r.error ? json(r.error.message()) : json(nullptr)}});
            return;
        }
        if (s.quiet)
            return;
        switch (r.status) {
        case ie::ping_status::reply:
        case ie::ping_status::timeout:
            break;
        case ie::ping_status::unreachable:
        case ie::ping_status::time_exceeded:
        case ie::ping_status::packet_too_big:
        case ie::ping_status::parameter_problem:
            m_lines.err(fmt::format("ICMP {} from {} for ICMP Echo sent to {}", icmp_description(r),
                                    r.from.to_string(), e.series.target.to_string()));
            return;
        case ie::ping_status::send_error:
            // Once per target: the same local error every time says nothing new.
            if (e.series.statistics.send_errors() == 1)
                m_lines.err(fmt::format("{}: error while sending ping: {}", name(e.target),
                                        r.error.message()));
            return;
        case ie::ping_status::cancelled:
            return;
        }
        if (s.mode == run_mode::single_shot) {
            // -u alone lists only the unreachable; -a lists names, bare.
            if (r.status != ie::ping_status::reply || (s.unreachable && !s.alive))
                return;
            std::string line = stamp();
            line += name(e.target);
            if (!s.alive && !s.unreachable)
                line += " is alive";
            if (s.elapsed)
                line += fmt::format(" ({} ms)", format_ms(to_ms(r.rtt)));
            m_lines.out(line);
            return;
        }
        if (s.alive || s.unreachable)
            return; // lists at the end instead (fping prints no per-ping lines then)
        const ie::ping_statistics& st = e.series.statistics;
        const std::string avg = st.rtt_mean() ? format_ms(to_ms(*st.rtt_mean())) : "NaN";
        if (r.status == ie::ping_status::reply)
            m_lines.out(fmt::format("{}{:<{}} : [{}], {} bytes, {} ms ({} avg, {}% loss)", stamp(),
                                    name(e.target), m_width, e.index, r.bytes + 8,
                                    format_ms(to_ms(r.rtt)), avg, loss_percent(st)));
        else
            m_lines.out(fmt::format("{}{:<{}} : [{}], timed out ({} avg, {}% loss)", stamp(),
                                    name(e.target), m_width, e.index, avg, loss_percent(st)));
    }

    void stray(const ie::stray_event& e) {
        const settings& s = m_settings;
        const bool duplicate = e.reply.what == ie::stray_reply::kind::duplicate;
        if (s.quiet)
            return;
        if (s.json) {
            emit({{"event", "stray"},
                  {"time", unix_now()},
                  {"target", name(e.target)},
                  {"address", e.series.target.to_string()},
                  {"kind", duplicate ? "duplicate" : "late"},
                  {"sequence", e.reply.sequence}});
            return;
        }
        m_lines.err(fmt::format("{} : {} reply, seq {}", name(e.target),
                                duplicate ? "duplicate" : "late", e.reply.sequence));
    }

    /// Per-target results and the totals. `final` is false for SIGQUIT.
    void summary(std::span<const ie::series_result> series, bool final, bool interrupted,
                 std::size_t unresolved, std::chrono::nanoseconds elapsed,
                 std::optional<int> exit_code) {
        if (m_settings.json)
            json_summary(series, final, interrupted, unresolved, elapsed, exit_code);
        else
            text_summary(series, final, unresolved, elapsed);
    }

  private:
    std::string stamp() const {
        return m_settings.timestamps ? fmt::format("[{:.5f}] ", unix_now()) : std::string();
    }

    void emit(const json& j) { m_lines.out(j.dump()); }

    static json target_json(const std::string& name, const ie::series_result& r, bool final,
                            bool vector) {
        const ie::ping_statistics& st = r.statistics;
        json j = {{"event", "target"},
                  {"time", unix_now()},
                  {"final", final},
                  {"target", name},
                  {"address", r.target.to_string()},
                  {"alive", r.alive()},
                  {"sent", st.sent()},
                  {"received", st.received()},
                  {"lost", st.lost()},
                  {"icmp_errors", st.icmp_errors()},
                  {"send_errors", st.send_errors()},
                  {"cancelled", st.cancelled()},
                  {"in_flight", r.in_flight},
                  {"duplicates", st.duplicates()},
                  {"late", r.late_replies},
                  {"out_of_order", st.out_of_order()},
                  {"loss_percent", st.loss_fraction() * 100.0},
                  {"rtt_min_ms", ms_or_null(st.rtt_min())},
                  {"rtt_avg_ms", ms_or_null(st.rtt_mean())},
                  {"rtt_max_ms", ms_or_null(st.rtt_max())},
                  {"rtt_stddev_ms", ms_or_null(st.rtt_stddev_population())},
                  {"rtt_stddev_sample_ms", ms_or_null(st.rtt_stddev_sample())}};
        if (vector) {
            json v = json::array();
            const auto history = st.rtt_history();
            const std::size_t n = std::max<std::size_t>(history.size(), r.started);
            for (std::size_t k = 0; k < n; ++k)
                v.push_back(k < history.size() ? ms_or_null(history[k]) : json(nullptr));
            j["rtts_ms"] = std::move(v);
        }
        return j;
    }

    void json_summary(std::span<const ie::series_result> series, bool final, bool interrupted,
                      std::size_t unresolved, std::chrono::nanoseconds elapsed,
                      std::optional<int> exit_code) {
        ie::ping_statistics total;
        std::size_t alive = 0;
        std::uint64_t late = 0;
        for (std::size_t i = 0; i < series.size(); ++i) {
            emit(target_json(name(i), series[i], final, m_settings.vector_output));
            total.merge(series[i].statistics);
            alive += series[i].alive() ? 1 : 0;
            late += series[i].late_replies;
        }
        emit({{"event", "summary"},
              {"time", unix_now()},
              {"final", final},
              {"interrupted", interrupted},
              {"elapsed_s", std::chrono::duration<double>(elapsed).count()},
              {"targets", series.size()},
              {"alive", alive},
              {"unreachable", series.size() - alive},
              {"unresolved", unresolved},
              {"sent", total.sent()},
              {"received", total.received()},
              {"lost", total.lost()},
              {"icmp_errors", total.icmp_errors()},
              {"send_errors", total.send_errors()},
              {"cancelled", total.cancelled()},
              {"duplicates", total.duplicates()},
              {"late", late},
              {"out_of_order", total.out_of_order()},
              {"loss_percent", total.loss_fraction() * 100.0},
              {"rtt_min_ms", ms_or_null(total.rtt_min())},
              {"rtt_avg_ms", ms_or_null(total.rtt_mean())},
              {"rtt_max_ms", ms_or_null(total.rtt_max())},
              {"rtt_stddev_ms", ms_or_null(total.rtt_stddev_population())},
              {"exit_code", exit_code ? json(*exit_code) : json(nullptr)}});
    }

    std::string summary_line(std::size_t i, const ie::series_result& r) const {
        const ie::ping_statistics& st = r.statistics;
        std::string line = fmt::format("{:<{}} : xmt/rcv/%loss = {}/{}/{}%", name(i), m_width,
                                       st.sent(), st.received(), loss_percent(st));
        if (st.received() > 0)
            line += fmt::format(", min/avg/max = {}/{}/{}, stddev = {}",
                                format_ms(to_ms(*st.rtt_min())), format_ms(to_ms(*st.rtt_mean())),
                                format_ms(to_ms(*st.rtt_max())),
                                format_ms(to_ms(*st.rtt_stddev_population())));
        line += fmt::format(", out-of-order = {}, duplicates = {}, icmp-errors = {}",
                            st.out_of_order(), st.duplicates(), st.icmp_errors());
        return line;
    }

    std::string vector_line(std::size_t i, const ie::series_result& r) const {
        std::string line = fmt::format("{:<{}} :", name(i), m_width);
        const auto history = r.statistics.rtt_history();
        const std::size_t n = std::max<std::size_t>(history.size(), r.started);
        for (std::size_t k = 0; k < n; ++k)
            line += k < history.size() && history[k] ? " " + format_ms(to_ms(*history[k])) : " -";
        return line;
    }

    void text_summary(std::span<const ie::series_result> series, bool final, std::size_t unresolved,
                      std::chrono::nanoseconds elapsed) {
        const settings& s = m_settings;
        m_lines.hold_errors();
        struct release {
            line_output& lines;
            ~release() { lines.release_errors(); }
        } released_at_exit{m_lines};
        if (!final) {
            const std::time_t now = std::time(nullptr);
            std::tm tm{};
            ::localtime_r(&now, &tm);
            m_lines.err(fmt::format("[{:02}:{:02}:{:02}]", tm.tm_hour, tm.tm_min, tm.tm_sec));
        }
        if (s.mode == run_mode::single_shot && final) {
            for (std::size_t i = 0; i < series.size(); ++i) {
                if (series[i].alive())
                    continue;
                if (s.unreachable)
                    m_lines.out(name(i));
                else if (!s.quiet && !s.alive)
                    m_lines.out(name(i) + " is unreachable");
            }
        } else {
            // Count and loop modes; and every interim summary (SIGQUIT).
            if (final && (s.alive || s.unreachable))
                for (std::size_t i = 0; i < series.size(); ++i)
                    if (series[i].alive() ? s.alive : s.unreachable)
                        m_lines.out(name(i));
            if (final && !s.quiet && !s.alive && !s.unreachable)
                m_lines.err("");
            for (std::size_t i = 0; i < series.size(); ++i)
                m_lines.err(s.vector_output ? vector_line(i, series[i])
                                            : summary_line(i, series[i]));
        }
        if (s.stats && final)
            global_stats(series, unresolved, elapsed);
    }

    /// fping -s's block of totals.
    void global_stats(std::span<const ie::series_result> series, std::size_t unresolved,
                      std::chrono::nanoseconds elapsed) {
        ie::ping_statistics total;
        std::size_t alive = 0;
        std::uint64_t late = 0;
        for (const ie::series_result& r : series) {
            total.merge(r.statistics);
            alive += r.alive() ? 1 : 0;
            late += r.late_replies;
        }
        auto row = [&](std::uint64_t n, std::string_view what) {
            m_lines.err(fmt::format(" {:>7} {}", n, what));
        };
        m_lines.err("");
        row(series.size(), "targets");
        row(alive, "alive");
        row(series.size() - alive, "unreachable");
        row(unresolved, "unknown addresses");
        m_lines.err("");
        row(total.lost(), "timeouts (waiting for response)");
        row(total.sent(), "ICMP Echos sent");
        row(total.received(), "ICMP Echo Replies received");
        row(total.icmp_errors(), "other ICMP received");
        row(total.duplicates(), "duplicate replies");
        row(late, "late replies");
        row(total.out_of_order(), "out-of-order replies");
        m_lines.err("");
        if (total.received() > 0) {
            auto rtt = [&](double ms, std::string_view what) {
                m_lines.err(fmt::format(" {} ms ({})", format_ms(ms), what));
            };
            rtt(to_ms(*total.rtt_min()), "min round trip time");
            rtt(to_ms(*total.rtt_mean()), "avg round trip time");
            rtt(to_ms(*total.rtt_max()), "max round trip time");
            rtt(to_ms(*total.rtt_stddev_population()), "round trip time standard deviation");
        }
        m_lines.err(fmt::format(" {:>12.3f} sec (elapsed real time)",
                                std::chrono::duration<double>(elapsed).count()));
        m_lines.err("");
    }

    const settings& m_settings;
    std::vector<std::string> m_names;
    line_output& m_lines;
    std::size_t m_width = 0;
};

// ------------------------------------------------------------- running

/// Runs beside the fan-out: turns signals into stop requests and interim
/// summaries, and draws the progress line. Signals only set counters; they
/// are acted on here, on the engine's thread, within one tick.
struct supervisor {
    static constexpr auto tick = 25ms;
    static constexpr auto progress_every = 1s;

    ie::engine& eng;
    ie::ping_fanout& fan;
    reporter& report;
    line_output& lines;
    std::chrono::steady_clock::time_point started;
    std::size_t unresolved = 0;
    bool interrupted = false;
    bool cancelled = false;

    ie::task<void> run() {
        int quits_seen = 0;
        auto next_progress = started + progress_every;
        std::uint64_t sent_before = 0;
        auto progress_before = started;
        while (co_await eng.sleep_for(tick)) {
            // Lines reach a pipe within a tick (a consumer of -l --json sees
            // events live) without a write per line.
            std::fflush(stdout);
            const int interrupts = g_interrupts.load(std::memory_order_relaxed);
            if (interrupts >= 1 && !interrupted) {
                interrupted = true;
                fan.request_stop(); // pings in flight run to their timeout
            }
            if (interrupts >= 2 && !cancelled) {
                cancelled = true;
                eng.stop(); // cancels the pings in flight; wakes this sleep too
            }
            if (const int quits = g_quit_requests.load(std::memory_order_relaxed);
                quits != quits_seen) {
                quits_seen = quits;
                report.summary(fan.series(), false, interrupted, unresolved,
                               std::chrono::steady_clock::now() - started, std::nullopt);
            }
            const auto now = std::chrono::steady_clock::now();
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
                    p.targets_finished, p.targets, p.targets_alive, p.replies, p.timeouts,
                    p.in_flight, rate));
            }
        }
    }
};

/// Opens the sockets the targets need, so that a refusal is reported once,
/// up front, with the engine's explanation of what to fix.
std::optional<std::string> open_sockets(ie::engine& eng, const ie::target_list& list,
                                        const std::string& logged) {
    bool need[2] = {false, false};
    for (const ie::target& t : list.targets())
        need[t.address.is_v4() ? 0 : 1] = true;
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

int run(settings& s) {
    // Targets.
    ie::target_list_options list_options;
    list_options.family = family_of(s);
    list_options.cap = s.max_targets;
    list_options.all_addresses = s.all_addresses;
    target_set targets{ie::target_list(std::move(list_options)), {}};
    const bool stdin_implied = s.targets.empty() && s.file.empty() && !s.generate;
    if (stdin_implied) {
        if (::isatty(STDIN_FILENO))
            throw usage_error("no targets: give addresses or names, -f FILE, or -g");
        s.file = "-"; // fping reads targets from stdin when none are given
    }
    collect_targets(s, targets);
    for (const ie::target& t : targets.list.targets())
        targets.names.push_back(s.by_address || t.name.empty() ? t.address.to_string() : t.name);

    line_output lines(::isatty(STDERR_FILENO) != 0);
    reporter report(s, targets.names, lines);
    for (const ie::target_failure& f : targets.list.failures())
        report.resolve_failure(f);
    const std::size_t unresolved = targets.list.failures().size();
    if (targets.list.empty()) {
        if (unresolved > 0)
            return exit_unresolved;
        throw usage_error("no targets");
    }

    // The pinging.
    std::vector<ie::ip_address> addresses;
    addresses.reserve(targets.list.size());
    for (const ie::target& t : targets.list.targets())
        addresses.push_back(t.address);
    ie::fanout_options options;
    options.series.count = s.mode == run_mode::single_shot ? std::uint64_t{s.retries} + 1
                           : s.mode == run_mode::loop      ? 0
                                                           : s.count;
    options.series.period = s.period_ns;
    options.series.timeout = s.timeout_ns;
    options.series.ping.payload_size = s.size;
    options.series.until_reply = s.mode == run_mode::single_shot;
    options.series.keep_results = false;
    options.series.rtt_history = s.vector_output ? static_cast<std::size_t>(s.count) : 0;
    options.pace = s.pace;
    options.on_ping = [&report](const ie::ping_event& e) { report.ping(e); };
    options.on_stray = [&report](const ie::stray_event& e) { report.stray(e); };
    ie::ping_fanout fan(addresses, std::move(options));

    std::string engine_error; // the engine's last error message: which call failed
    s.engine.on_stray = [&fan](const ie::stray_reply& r) { fan.on_stray(r); };
    s.engine.log.sink = [&engine_error](ie::log_component, ie::log_level, std::string_view m) {
        engine_error = m;
    };
    s.engine.log.set(ie::log_component::sockets, ie::log_level::error)
        .set(ie::log_component::ring, ie::log_level::error);
    ie::engine eng(s.engine);
    if (const auto why = open_sockets(eng, targets.list, engine_error)) {
        lines.err("icmpengine: " + *why);
        return exit_system;
    }

    install_signal_handlers();
    const auto started = std::chrono::steady_clock::now();
    report.start(fan.series().size());
    supervisor watch{eng, fan, report, lines, started, unresolved};
    eng.spawn(watch.run());
    eng.run(fan.run(eng));
    eng.stop(); // ends the supervisor
    lines.clear_progress();

    std::size_t alive = 0;
    for (const ie::series_result& r : fan.series())
        alive += r.alive() ? 1 : 0;
    const int code = unresolved > 0                 ? exit_unresolved
                     : alive == fan.series().size() ? exit_all_alive
                                                    : exit_unreachable;
    report.summary(fan.series(), true, watch.interrupted, unresolved,
                   std::chrono::steady_clock::now() - started, code);
    std::fflush(stdout);
    return code;
}

} // namespace

int main(int argc, char** argv) {
    settings s;
    CLI::App app{"icmpengine: ping many hosts at once over io_uring (fping-compatible options).",
                 "icmpengine"};
    app.footer(help_footer);
    app.set_version_flag("-v,--version", "icmpengine " ICMPENGINE_VERSION);
    app.get_formatter()->column_width(32);

    // Targets.
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

    // Pinging.
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

    // Packets.
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

    // Output.
    app.add_flag("-q,--quiet", s.quiet, "No per-ping lines, only summaries");
    app.add_flag("-a,--alive", s.alive, "List the targets that answered");
    app.add_flag("-u,--unreach", s.unreachable, "List the targets that did not answer");
    app.add_flag("-A,--addr", s.by_address, "Show targets by address, not by name");
    app.add_flag("-D,--timestamp", s.timestamps, "Unix time before each per-ping line");
    app.add_flag("-e,--elapsed", s.elapsed, "Show the RTT on 'is alive' lines");
    app.add_flag("--stats", s.stats, "Print totals at the end (as fping -s)");
    app.add_flag("--json", s.json, "JSON Lines on stdout (schema: icmpengine.schema.json)");

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
        return run(s);
    } catch (const usage_error& e) {
        std::fprintf(stderr, "icmpengine: %s\n", e.what());
        return exit_usage;
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "icmpengine: %s\n", e.what());
        return exit_system;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "icmpengine: %s\n", e.what());
        return exit_system;
    }
}
