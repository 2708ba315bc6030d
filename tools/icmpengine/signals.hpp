// SPDX-License-Identifier: MIT
// SIGINT, SIGTERM and SIGQUIT: the handlers only count; the supervisor
// (supervisor.hpp) reads the counts on the engine's thread and acts.
#pragma once

namespace icmpengine_cli {

/// Installs the handlers, without SA_RESTART: a blocked io_uring_enter
/// returns with EINTR, and the engine retries it.
void install_signal_handlers();

/// SIGINTs and SIGTERMs received so far.
int interrupts_received() noexcept;

/// SIGQUITs received so far.
int quit_requests_received() noexcept;

} // namespace icmpengine_cli
