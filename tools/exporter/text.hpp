// SPDX-License-Identifier: MIT
// Small string helpers the exporter's parsers share (HTTP headers, /probe
// queries).
#pragma once

#include <string_view>

namespace icmpengine_exporter {

/// `s` without leading and trailing spaces and tabs (HTTP's OWS).
inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

} // namespace icmpengine_exporter
