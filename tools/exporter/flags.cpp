// SPDX-License-Identifier: MIT
#include "flags.hpp"

#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <string_view>

namespace icmpengine_exporter {

namespace {

constexpr std::string_view default_buckets_text =
    "5e-05,0.0001,0.0002,0.0004,0.0008,0.0016,0.0032,0.0064,0.0128,0.0256,0.0512,0.1024,0.2048,"
    "0.4096,0.8192,1.6384,3.2768,6.5536,13.1072,26.2144";

struct flag_def {
    std::string_view name; ///< long name, without "--"
    char short_name;       ///< 0 = none
    bool boolean;
    std::string_view placeholder; ///< for --help: default or value name
    std::string_view help;
    /// Stores the value (a boolean flag gets "true" or "false"); throws
    /// flag_error with the reason on a bad value.
    std::function<void(exporter_flags&, std::string_view)> set;
};

[[noreturn]] void bad_value(std::string_view flag, std::string_view value, std::string_view why) {
    throw flag_error("invalid value '" + std::string(value) + "' for flag '--" + std::string(flag) +
                     "': " + std::string(why));
}

std::uint64_t parse_unsigned(std::string_view flag, std::string_view value, std::uint64_t min,
                             std::uint64_t max) {
    std::uint64_t v = 0;
    const auto r = std::from_chars(value.data(), value.data() + value.size(), v);
    if (r.ec != std::errc{} || r.ptr != value.data() + value.size())
        bad_value(flag, value, "not a number");
    if (v < min || v > max)
        bad_value(flag, value,
                  "out of range (" + std::to_string(min) + ".." + std::to_string(max) + ")");
    return v;
}

std::chrono::nanoseconds parse_duration_flag(std::string_view flag, std::string_view value,
                                             bool zero_ok) {
    const auto d = parse_go_duration(value);
    if (!d)
        bad_value(flag, value, "not a duration (e.g. 1s, 500ms, 1m30s)");
    if (d->count() < 0)
        bad_value(flag, value, "must not be negative");
    if (!zero_ok && d->count() == 0)
        bad_value(flag, value, "must be positive");
    return *d;
}

std::vector<double> parse_buckets(std::string_view value) {
    std::vector<double> out;
    std::size_t start = 0;
    while (start <= value.size()) {
        const std::size_t comma = std::min(value.find(',', start), value.size());
        const std::string_view item = value.substr(start, comma - start);
        double v = 0;
        const auto r = std::from_chars(item.data(), item.data() + item.size(), v);
        if (item.empty() || r.ec != std::errc{} || r.ptr != item.data() + item.size() ||
            !std::isfinite(v))
            bad_value("buckets", value, "'" + std::string(item) + "' is not a number");
        if (!out.empty() && v <= out.back())
            bad_value("buckets", value, "bucket bounds must increase");
        out.push_back(v);
        start = comma + 1;
    }
    return out;
}

/// smokeping_prober's flags, as its --help lists them.
std::vector<flag_def> smokeping_flags() {
    return {
        {"config.file", 0, false, "PATH", "smokeping_prober configuration YAML file (optional).",
         [](exporter_flags& f, std::string_view v) { f.config_file = v; }},
        {"web.listen-address", 0, false, ":9374 ...",
         "Addresses to expose metrics and the status page on. Repeatable.",
         [](exporter_flags& f, std::string_view v) { f.listen_addresses.emplace_back(v); }},
        {"web.telemetry-path", 0, false, "\"/metrics\"", "Path under which to expose metrics.",
         [](exporter_flags& f, std::string_view v) {
             if (!v.starts_with('/') || v == "/" || v == "/probe")
                 bad_value("web.telemetry-path", v, "must start with '/', not be / or /probe");
             f.telemetry_path = v;
         }},
        {"buckets", 0, false, default_buckets_text, "A comma delimited list of buckets to use.",
         [](exporter_flags& f, std::string_view v) { f.buckets = parse_buckets(v); }},
        {"ping.interval", 'i', false, "1s", "Ping interval duration.",
         [](exporter_flags& f, std::string_view v) {
             f.interval = parse_duration_flag("ping.interval", v, false);
         }},
        {"privileged", 0, true, "", "Accepted for smokeping_prober's sake: changes nothing.",
         [](exporter_flags& f, std::string_view v) { f.privileged = v == "true"; }},
        {"ping.size", 's', false, "56", "Ping packet size in bytes.",
         [](exporter_flags& f, std::string_view v) {
             f.size = static_cast<std::uint32_t>(parse_unsigned("ping.size", v, 0, 65507));
         }},
        {"log.level", 0, false, "info",
         "Only log messages of this severity or above: one of "
         "debug, info, warn, error.",
         [](exporter_flags& f, std::string_view v) {
             if (v != "debug" && v != "info" && v != "warn" && v != "error")
                 bad_value("log.level", v, "one of debug, info, warn, error");
             f.log_level = v;
         }},
        {"log.format", 0, false, "logfmt", "Log format: logfmt or json.",
         [](exporter_flags& f, std::string_view v) {
             if (v != "logfmt" && v != "json")
                 bad_value("log.format", v, "one of logfmt, json");
             f.log_format = v;
         }},
    };
}

/// Ours: long names only, nothing changes unless given.
std::vector<flag_def> our_flags() {
    return {
        {"ping.timeout", 0, false, "interval",
         "How long a ping waits for its reply; a later one is a late reply. Default: the "
         "target's interval.",
         [](exporter_flags& f, std::string_view v) {
             f.timeout = parse_duration_flag("ping.timeout", v, false);
         }},
        {"shard", 0, false, "K/N", "Ping only the hosts of shard K of N (0 <= K < N).",
         [](exporter_flags& f, std::string_view v) {
             const auto s = parse_shard(v);
             if (!s)
                 bad_value("shard", v, "expected K/N with 0 <= K < N");
             f.shard = *s;
         }},
        {"probe.allow", 0, false, "127.0.0.0/8,::1/128",
         "Prefixes /probe may ping, comma separated. Nothing else is ever pinged by /probe.",
         [](exporter_flags& f, std::string_view v) {
             std::string error;
             auto list = allow_list::parse(v, error);
             if (!list)
                 bad_value("probe.allow", v, error);
             f.probe_allow = std::move(*list);
         }},
        {"probe.max-count", 0, false, "100", "Most pings one /probe may ask for.",
         [](exporter_flags& f, std::string_view v) {
             f.probe.max_count =
                 static_cast<std::uint32_t>(parse_unsigned("probe.max-count", v, 1, 100'000));
         }},
        {"engines", 0, false, "1",
         "Ping engines (threads) for continuous mode; targets are split among them.",
         [](exporter_flags& f, std::string_view v) {
             f.engines = static_cast<unsigned>(parse_unsigned("engines", v, 1, 256));
         }},
        {"dns.interval", 0, false, "5m", "How often host names are resolved again (0: never).",
         [](exporter_flags& f, std::string_view v) {
             f.dns_interval = parse_duration_flag("dns.interval", v, true);
         }},
        {"status.history-bins", 0, false, "60",
         "Minutes of history kept per target for the status page (0: none).",
         [](exporter_flags& f, std::string_view v) {
             f.history_bins = parse_unsigned("status.history-bins", v, 0, 10'080);
         }},
        {"web.max-connections", 0, false, "512", "HTTP connections open at once at most.",
         [](exporter_flags& f, std::string_view v) {
             f.max_connections = parse_unsigned("web.max-connections", v, 1, 1'000'000);
         }},
    };
}

const std::vector<flag_def>& flag_table() {
    static const std::vector<flag_def> table = [] {
        std::vector<flag_def> t = smokeping_flags();
        for (flag_def& d : our_flags())
            t.push_back(std::move(d));
        return t;
    }();
    return table;
}

const flag_def* find_long(std::string_view name) {
    for (const flag_def& d : flag_table())
        if (d.name == name)
            return &d;
    return nullptr;
}

const flag_def* find_short(char c) {
    for (const flag_def& d : flag_table())
        if (d.short_name == c)
            return &d;
    return nullptr;
}

/// Handles argv[i], a long flag ("--name", "--name=value", "--no-name");
/// returns the index of the last argument used.
int take_long(exporter_flags& f, int argc, const char* const* argv, int i) {
    std::string_view arg = std::string_view(argv[i]).substr(2);
    if (arg == "help" || arg == "help-long") {
        f.help = true;
        return i;
    }
    if (arg == "version") {
        f.version = true;
        return i;
    }
    const std::size_t eq = arg.find('=');
    const std::string_view name = arg.substr(0, eq);
    const flag_def* d = find_long(name);
    if (d == nullptr && name.starts_with("no-")) {
        d = find_long(name.substr(3));
        if (d != nullptr && d->boolean && eq == std::string_view::npos) {
            d->set(f, "false");
            return i;
        }
        d = nullptr;
    }
    if (d == nullptr)
        throw flag_error("unknown long flag '--" + std::string(name) + "', try --help");
    if (d->boolean) {
        const std::string_view v = eq == std::string_view::npos ? "true" : arg.substr(eq + 1);
        if (v != "true" && v != "false")
            bad_value(d->name, v, "expected true or false");
        d->set(f, v);
        return i;
    }
    if (eq != std::string_view::npos) {
        d->set(f, arg.substr(eq + 1));
        return i;
    }
    if (i + 1 >= argc)
        throw flag_error("expected argument for flag '--" + std::string(name) + "'");
    d->set(f, argv[i + 1]);
    return i + 1;
}

/// Handles argv[i], a short flag ("-h", "-i 1s", "-i1s", "-i=1s").
int take_short(exporter_flags& f, int argc, const char* const* argv, int i) {
    const std::string_view arg = argv[i];
    if (arg == "-h") {
        f.help = true;
        return i;
    }
    const flag_def* d = find_short(arg[1]);
    if (d == nullptr)
        throw flag_error("unknown short flag '" + std::string(arg.substr(0, 2)) + "', try --help");
    std::string_view rest = arg.substr(2);
    if (rest.starts_with('='))
        rest.remove_prefix(1);
    if (!rest.empty()) {
        d->set(f, rest);
        return i;
    }
    if (i + 1 >= argc)
        throw flag_error("expected argument for flag '-" + std::string(1, arg[1]) + "'");
    d->set(f, argv[i + 1]);
    return i + 1;
}

} // namespace

std::vector<double> default_buckets() {
    return parse_buckets(default_buckets_text);
}

exporter_flags parse_flags(int argc, const char* const* argv) {
    exporter_flags f;
    bool only_hosts = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (only_hosts || arg.size() < 2 || arg[0] != '-') {
            f.hosts.emplace_back(arg);
        } else if (arg == "--") {
            only_hosts = true;
        } else if (arg.starts_with("--")) {
            i = take_long(f, argc, argv, i);
        } else {
            i = take_short(f, argc, argv, i);
        }
    }
    if (f.listen_addresses.empty())
        f.listen_addresses.emplace_back(":9374");
    return f;
}

std::string usage_text() {
    std::string out =
        "usage: icmpengine-exporter [<flags>] [<hosts>...]\n\n"
        "Pings hosts continuously (smokeping_prober's metrics at /metrics) and on\n"
        "request (blackbox_exporter's ICMP probe at /probe), with a status page at /.\n\n"
        "Flags:\n"
        "  -h, --help                 Show this help.\n";
    for (const flag_def& d : flag_table()) {
        std::string left = d.short_name != 0 ? std::string("  -") + d.short_name + ", --"
                                             : std::string("      --");
        left += d.boolean ? "[no-]" : "";
        left += d.name;
        if (!d.boolean) {
            left += '=';
            left += d.placeholder;
        }
        out += left;
        out += "\n                             ";
        out += d.help;
        out += '\n';
    }
    out += "      --version                Show the version.\n\n"
           "Args:\n  [<hosts>]  Hosts to ping (names or addresses).\n";
    return out;
}

} // namespace icmpengine_exporter
