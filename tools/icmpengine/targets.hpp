// SPDX-License-Identifier: MIT
// The targets of one run, read as fping reads them: from the arguments, a
// file or stdin (the first word of each line), or generated from a prefix
// or a range (-g); each given target with the name the output shows.
#pragma once

#include "options.hpp"

#include <icmpengine/icmpengine.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace icmpengine_cli {

/// One target as given. fping pings every given target on its own, under
/// its own name: `fping localhost 127.0.0.1` prints two lines, so does
/// `fping 127.0.0.1 127.0.0.1`. The fan-out pings each address once
/// (ping_fanout drops duplicates); a given target's results are those of
/// its address.
struct given_target {
    /// What the output shows (fping's "host"): the name as given; with -A
    /// the address; with -n (numeric names) or -d the reverse-DNS name;
    /// with -A and -n/-d "NAME (ADDRESS)".
    std::string name;
    /// Index into target_set::addresses (and the fan-out's series()).
    std::size_t address = 0;
};

struct target_set {
    /// Distinct addresses, in first-seen order: the fan-out's targets.
    std::vector<ie::ip_address> addresses;
    /// Every given target, in order, duplicates kept (-m: one per address).
    std::vector<given_target> given;
    /// Names that gave no address, in the order met: fping's
    /// "NAME: REASON" (the getaddrinfo message), exit 2.
    std::vector<ie::target_failure> failures;
};

/// Reads the targets `s` names. With none given, reads stdin as fping does
/// (and sets s.file to "-"), unless stdin is a terminal. Throws usage_error
/// (exit 1) for missing or malformed targets and for a directory given to
/// -f, std::system_error (exit 4) for a file that cannot be opened or read.
/// Messages carry no internal names and cut long inputs (printable()).
target_set read_targets(settings& s);

} // namespace icmpengine_cli
