// SPDX-License-Identifier: MIT
#include "received_message.hpp"

#include <cstring>
#include <ctime>

namespace icmpengine::testing {

const control_message* received_message::find(int level, int type) const {
    for (const control_message& c : control)
        if (c.level == level && c.type == type)
            return &c;
    return nullptr;
}

std::optional<std::chrono::nanoseconds> received_message::timestamp() const {
    const control_message* c = find(SOL_SOCKET, SCM_TIMESTAMPNS);
    if (c == nullptr || c->data.size() < sizeof(timespec))
        return std::nullopt;
    timespec ts{};
    std::memcpy(&ts, c->data.data(), sizeof ts);
    return std::chrono::nanoseconds(std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec);
}

received_message receive_message(int fd, std::span<std::uint8_t> buffer, int flags) {
    received_message m;
    alignas(cmsghdr) unsigned char control[512];
    iovec iov{buffer.data(), buffer.size()};
    msghdr msg{};
    msg.msg_name = &m.from;
    msg.msg_namelen = sizeof m.from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    m.length = ::recvmsg(fd, &msg, flags);
    if (m.length < 0)
        return m;
    m.from_length = msg.msg_namelen;
    m.flags = msg.msg_flags;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        const auto* data = static_cast<const std::uint8_t*>(CMSG_DATA(c));
        const std::size_t size = c->cmsg_len - CMSG_LEN(0);
        m.control.push_back({c->cmsg_level, c->cmsg_type, {data, data + size}});
    }
    return m;
}

} // namespace icmpengine::testing
