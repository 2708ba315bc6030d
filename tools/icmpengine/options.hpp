// SPDX-License-Identifier: MIT
// The command line of icmpengine: what it asks for (settings), and the
// parser that fills it in (CLI11) and rejects what cannot run (exit 3).
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

// Exit codes, as fping's (fping(8), DIAGNOSTICS).
constexpr int exit_all_alive = 0;
constexpr int exit_unreachable = 1;
constexpr int exit_unresolved = 2;
constexpr int exit_usage = 3;
constexpr int exit_system = 4;

constexpr std::uint64_t default_max_targets = std::uint64_t{1} << 20;

enum class run_mode { single_shot, count, loop };

/// "single", "count", "loop": the names --json prints.
std::string_view to_string(run_mode m);

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

/// "250" (milliseconds, as fping takes them), "0.5", "250ms", "1.5s",
/// "100us", "2000ns". std::nullopt if the text is none of these.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

/// Parses the command line into `s`, derived settings included. Returns the
/// exit code when the program ends here: 0 after --help or --version (printed
/// to stdout), exit_usage after an invalid command line (the reason printed
/// to stderr). std::nullopt: `s` is ready to run.
std::optional<int> parse_command_line(int argc, char** argv, settings& s);

} // namespace icmpengine_cli
