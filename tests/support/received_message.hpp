// SPDX-License-Identifier: MIT
// One recvmsg(2) with its ancillary data, for tests that read packets and
// their kernel timestamps, TTLs or queued errors off a socket.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace icmpengine::testing {

/// One control message (cmsg(3)): its level, type and data.
struct control_message {
    int level = 0;
    int type = 0;
    std::vector<std::uint8_t> data;
};

struct received_message {
    ssize_t length = -1; ///< recvmsg's result: bytes read, or -1 (errno set)
    sockaddr_storage from{};
    socklen_t from_length = 0;
    int flags = 0; ///< msg_flags (MSG_TRUNC, MSG_CTRUNC, ...)
    std::vector<control_message> control;

    /// The data of the first control message of that level and type.
    const control_message* find(int level, int type) const;
    /// SCM_TIMESTAMPNS, if present: the kernel's receive (or, on a packet
    /// socket, transmit) time, CLOCK_REALTIME.
    std::optional<std::chrono::nanoseconds> timestamp() const;
};

/// recvmsg(fd) into `buffer` with room for the sender's address and
/// 512 bytes of control messages.
received_message receive_message(int fd, std::span<std::uint8_t> buffer, int flags);

} // namespace icmpengine::testing
