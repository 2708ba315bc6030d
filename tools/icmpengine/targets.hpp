// SPDX-License-Identifier: MIT
// The targets of one run: from the arguments, a file or stdin, or generated
// from prefixes and ranges (-g), each with the name the output shows.
#pragma once

#include "options.hpp"

#include <icmpengine/icmpengine.hpp>

#include <string>
#include <vector>

namespace icmpengine_cli {

struct target_set {
    ie::target_list list;
    std::vector<std::string> names; ///< what to print for list.targets()[i]
};

/// Reads the targets `s` names. With none given, reads stdin as fping does
/// (and sets s.file to "-"), unless stdin is a terminal. Throws usage_error
/// for missing or malformed targets, std::system_error for an unreadable
/// file; names that do not resolve are in list.failures().
target_set read_targets(settings& s);

} // namespace icmpengine_cli
