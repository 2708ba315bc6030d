// SPDX-License-Identifier: MIT
// Target reading: the library's target_list does the parsing and the name
// resolution; this file turns the options into calls to it.
#include "targets.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <system_error>
#include <unistd.h>

namespace icmpengine_cli {

namespace {

ie::family_filter family_of(const settings& s) {
    return s.ipv4 ? ie::family_filter::v4 : s.ipv6 ? ie::family_filter::v6 : ie::family_filter::any;
}

/// -g: CIDR prefixes, or one range FIRST LAST.
void generate_targets(const settings& s, ie::target_list& list) {
    const bool all_cidr = std::all_of(s.targets.begin(), s.targets.end(), [](const auto& t) {
        return t.find('/') != std::string::npos;
    });
    if (all_cidr) {
        for (const std::string& t : s.targets)
            list.add_cidr(t);
        // The cap holds per prefix (target_list) and for all of them.
        if (list.size() > s.max_targets)
            throw usage_error(
                fmt::format("-g/--generate: the prefixes expand to {} addresses in all, more than "
                            "--max-targets {}",
                            list.size(), s.max_targets));
    } else if (s.targets.size() == 2) {
        list.add_range(s.targets[0], s.targets[1]);
    } else {
        std::string given;
        for (const auto& t : s.targets)
            given += (given.empty() ? "" : " ") + t;
        throw usage_error("-g/--generate: expected ADDRESS/PREFIX... or FIRST LAST, got '" + given +
                          "'");
    }
}

/// Builds the target list. Malformed generator input throws usage_error;
/// an unreadable file throws std::system_error.
void collect_targets(const settings& s, ie::target_list& list) {
    try {
        if (s.generate) {
            generate_targets(s, list);
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

} // namespace

target_set read_targets(settings& s) {
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
    collect_targets(s, targets.list);
    for (const ie::target& t : targets.list.targets())
        targets.names.push_back(s.by_address || t.name.empty() ? t.address.to_string() : t.name);
    return targets;
}

} // namespace icmpengine_cli
