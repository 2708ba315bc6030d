// SPDX-License-Identifier: MIT
#include "line_output.hpp"

#include <cstdio>

namespace icmpengine_cli {

void line_output::out(std::string_view line) {
    clear_progress();
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
}

void line_output::err(std::string_view line) {
    m_err.append(line);
    m_err.push_back('\n');
    if (m_holding == 0)
        flush_err();
}

void line_output::err_fragment(std::string_view text) {
    m_err.append(text);
    if (m_holding == 0)
        flush_err();
}

void line_output::release_errors() {
    if (--m_holding == 0)
        flush_err();
}

void line_output::progress(std::string_view text) {
    if (!m_progress)
        return;
    std::fflush(stdout);
    std::fprintf(stderr, "\r%.*s\033[K", static_cast<int>(text.size()), text.data());
    std::fflush(stderr);
    m_shown = true;
}

void line_output::clear_progress() {
    if (!m_shown)
        return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    m_shown = false;
}

void line_output::flush_err() {
    if (m_err.empty())
        return;
    clear_progress();
    std::fflush(stdout); // keep the order of the two streams on a terminal
    std::fwrite(m_err.data(), 1, m_err.size(), stderr);
    m_err.clear();
}

} // namespace icmpengine_cli
