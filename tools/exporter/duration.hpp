// SPDX-License-Identifier: MIT
// Durations as Go's time.ParseDuration reads them ("1s", "500ms",
// "1m30s", "1.5h", "250us", "250µs", "10ns"): the syntax of
// smokeping_prober's and blackbox_exporter's flags, configuration and
// query parameters.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace icmpengine_exporter {

/// The duration, or nullopt if `text` is not one (empty, no unit except
/// for "0", an unknown unit, overflow). Negative durations are refused.
std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view text);

/// As Go's Duration.String() prints it: "1s", "1m30s", "500ms", "1.5s".
std::string format_go_duration(std::chrono::nanoseconds d);

} // namespace icmpengine_exporter
