// SPDX-License-Identifier: MIT
// Where icmpengine's lines go: stdout and stderr, and on a terminal a
// progress line on stderr that never mixes with them.
#pragma once

#include <string>
#include <string_view>

namespace icmpengine_cli {

/// stdout and stderr lines, with a progress line on a terminal's stderr kept
/// out of their way: it is erased before any other line is written and
/// redrawn at the next tick. stderr is unbuffered, so each line goes out in
/// one write, and a block of lines (a summary of 65,534 targets) in one.
class line_output {
  public:
    explicit line_output(bool progress) : m_progress(progress) {}

    void out(std::string_view line);
    void err(std::string_view line);
    /// Part of a stderr line, without its newline (fping writes " [<- ADDR]"
    /// to stderr in the middle of a stdout line).
    void err_fragment(std::string_view text);
    /// While held, stderr lines are collected and written at release.
    void hold_errors() noexcept { ++m_holding; }
    void release_errors();
    bool progress_enabled() const noexcept { return m_progress; }
    void progress(std::string_view text);
    void clear_progress();

  private:
    void flush_err();

    bool m_progress;
    bool m_shown = false;
    int m_holding = 0;
    std::string m_err;
};

} // namespace icmpengine_cli
