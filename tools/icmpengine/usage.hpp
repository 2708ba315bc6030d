// SPDX-License-Identifier: MIT
// -h and -v: fping's usage text with icmpengine's own options after it, and
// a version line that fping's version parsers accept.
#pragma once

#include <cstdio>
#include <string>

namespace icmpengine_cli {

/// fping's "Usage: PROGRAM [options] [targets...]" and its option lines
/// ("   -S, --src=IP ..."), then icmpengine's own options.
void print_usage(std::FILE* out, const std::string& program);

/// Invoked as fping: "fping: Version 5.5", then a line naming icmpengine
/// and its version. Otherwise "icmpengine: Version X.Y.Z" and the fping
/// version whose command line it takes.
void print_version(std::FILE* out, const std::string& program);

} // namespace icmpengine_cli
