// SPDX-License-Identifier: MIT
// Runs a program to its end and keeps what it wrote: for tests that compare
// two command-line tools (ours and fping) line by line.
#pragma once

#include <string>
#include <vector>

namespace icmpengine::testing {

struct program_output {
    int status = -1; ///< exit status, or -1 if killed by a signal
    std::string out;
    std::string err;
};

/// Runs argv[0] (searched in PATH) with `argv`, stdin from `input` (then
/// closed), and waits for it. The caller bounds the run with the program's
/// own options (-c, -t, ...): this waits as long as the program runs.
program_output run_program(const std::vector<std::string>& argv, const std::string& input = {});

/// The lines of `text`, without their newlines.
std::vector<std::string> lines_of(const std::string& text);

} // namespace icmpengine::testing
