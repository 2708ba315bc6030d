// SPDX-License-Identifier: MIT
// The exporter's log lines on stderr, as Prometheus exporters write them
// (--log.format=logfmt: `ts=... level=info msg="..." key=value`, or json).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace icmpengine_exporter {

enum class log_level { debug, info, warn, error };

/// Sets the threshold and format from --log.level / --log.format.
void configure_log(std::string_view level, std::string_view format);

/// One line, if `level` reaches the threshold. Thread-safe.
void log(log_level level, std::string_view message,
         std::initializer_list<std::pair<std::string_view, std::string_view>> fields = {});

} // namespace icmpengine_exporter
