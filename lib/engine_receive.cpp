// SPDX-License-Identifier: MIT
// engine_core's receive side: the multishot receive and the error queue,
// reading what the kernel delivered (timestamps, TTL, offender), and acting
// on the matcher's verdict (reply_matcher.hpp decides; this file ends the
// ping or counts the packet).
#include "engine_core.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <linux/errqueue.h>
#include <netinet/in.h>

namespace icmpengine::detail {
namespace {

ip_address address_from(const sockaddr* sa, std::size_t len) noexcept {
    if (sa == nullptr)
        return {};
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
        sockaddr_in in{};
        std::memcpy(&in, sa, sizeof in);
        std::array<std::uint8_t, 4> b{};
        std::memcpy(b.data(), &in.sin_addr, 4);
        return ip_address::from_v4_bytes(b);
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        sockaddr_in6 in6{};
        std::memcpy(&in6, sa, sizeof in6);
        std::array<std::uint8_t, 16> b{};
        std::memcpy(b.data(), &in6.sin6_addr, 16);
        return ip_address::from_v6_bytes(b, in6.sin6_scope_id);
    }
    return {};
}

/// A receive timestamp (SCM_TIMESTAMPNS, CLOCK_REALTIME) on the monotonic
/// clock.
std::int64_t monotonic_stamp(const cmsghdr* cm, std::int64_t realtime_offset) noexcept {
    timespec ts{};
    std::memcpy(&ts, CMSG_DATA(cm), sizeof ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec - realtime_offset;
}

} // namespace

void engine_core::rearm_receives() {
    for (std::size_t i = 0; i < m_families.size(); ++i) {
        family_state& fs = m_families[i];
        if (fs.socket.fd < 0)
            continue;
        if (!fs.recv_armed)
            arm_recv(family_at(i));
        if (fs.err_again && !fs.err_reading)
            read_errqueue(family_at(i));
    }
}

void engine_core::arm_recv(ip_family family) {
    const std::size_t f = family_index(family);
    family_state& fs = m_families[f];
    ++m_recoveries.receive_rearms;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_recvmsg_multishot(sqe, fs.socket.fd, &fs.recv_msg, MSG_TRUNC);
    if (fs.fixed_file) {
        sqe->fd = static_cast<int>(f);
        sqe->flags |= IOSQE_FIXED_FILE;
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = static_cast<std::uint16_t>(f);
    io_uring_sqe_set_data64(sqe, encode(op_kind::recv, f));
    fs.recv_armed = true;
}

void engine_core::read_errqueue(ip_family family) {
    const std::size_t f = family_index(family);
    family_state& fs = m_families[f];
    fs.err_iov = {fs.err_data.data(), fs.err_data.size()};
    fs.err_msg = {};
    fs.err_msg.msg_name = &fs.err_name;
    fs.err_msg.msg_namelen = sizeof fs.err_name;
    fs.err_msg.msg_iov = &fs.err_iov;
    fs.err_msg.msg_iovlen = 1;
    fs.err_msg.msg_control = fs.err_control.data();
    fs.err_msg.msg_controllen = fs.err_control.size();
    io_uring_sqe* sqe = get_sqe();
    // MSG_DONTWAIT: complete with -EAGAIN when the queue is empty instead of
    // waiting for POLLERR (which would also wake on every normal reply).
    io_uring_prep_recvmsg(sqe, fs.socket.fd, &fs.err_msg, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (fs.fixed_file) {
        sqe->fd = static_cast<int>(f);
        sqe->flags |= IOSQE_FIXED_FILE;
    }
    io_uring_sqe_set_data64(sqe, encode(op_kind::errqueue, f));
    fs.err_reading = true;
    fs.err_again = false;
}

void engine_core::handle_recv(ip_family family, const completion& c, std::int64_t realtime_offset) {
    const auto group = static_cast<std::uint16_t>(family_index(family));
    family_state& fs = m_families[group];
    if (c.flags & IORING_CQE_F_BUFFER) {
        const auto bid = static_cast<unsigned short>(c.flags >> IORING_CQE_BUFFER_SHIFT);
        io_uring_recvmsg_out* out =
            c.res > 0 ? io_uring_recvmsg_validate(m_ring.buffer(group, bid), c.res, &fs.recv_msg)
                      : nullptr;
        if (c.res > 0 && out == nullptr)
            ++m_stats.invalid_packets;
        if (out != nullptr) {
            datagram d;
            std::int64_t rx_mono = 0;
            for (cmsghdr* cm = io_uring_recvmsg_cmsg_firsthdr(out, &fs.recv_msg); cm != nullptr;
                 cm = io_uring_recvmsg_cmsg_nexthdr(out, &fs.recv_msg, cm)) {
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS)
                    rx_mono = monotonic_stamp(cm, realtime_offset);
                else if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TTL) ||
                         (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_HOPLIMIT))
                    std::memcpy(&d.ttl, CMSG_DATA(cm), sizeof d.ttl);
                else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TOS)
                    d.tos =
                        std::to_integer<int>(*reinterpret_cast<const std::byte*>(CMSG_DATA(cm)));
                else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_TCLASS)
                    std::memcpy(&d.tos, CMSG_DATA(cm), sizeof d.tos);
            }
            const unsigned received = io_uring_recvmsg_payload_length(out, c.res, &fs.recv_msg);
            d.data = {static_cast<const std::byte*>(io_uring_recvmsg_payload(out, &fs.recv_msg)),
                      received};
            // With MSG_TRUNC, raw sockets report the full length; ping
            // sockets only the copied one: then the full length is unknown.
            const bool length_unknown =
                (out->flags & MSG_TRUNC) != 0 && out->payloadlen <= received;
            d.full_length = length_unknown ? unknown_length : out->payloadlen;
            d.source = address_from(static_cast<const sockaddr*>(io_uring_recvmsg_name(out)),
                                    out->namelen);
            process_message(family, d, rx_mono);
        }
        // Back to the kernel at once; published at the end of this batch.
        m_ring.return_buffer(group, bid);
    }
    if (!(c.flags & IORING_CQE_F_MORE))
        receive_ended(family, c.res);
}

void engine_core::receive_ended(ip_family family, std::int32_t res) {
    family_state& fs = m_families[family_index(family)];
    if (res == -ENOBUFS)
        ++m_recoveries.receive_enobufs;
    else if (res < 0 && res != -ECANCELED)
        ++m_recoveries.receive_errors;
    // The multishot receive ended: out of buffers (-ENOBUFS), a pending
    // socket error (an ICMP error with IP_RECVERR sets sk_err), or
    // cancellation. Re-armed in the next turn unless we are tearing down.
    fs.recv_armed = false;
    if (res < 0 && res != -ENOBUFS && res != -ECANCELED && fs.socket.kind == socket_mode::datagram)
        fs.err_again = true;
    ICMPENGINE_LOG(ring, debug, "multishot receive ended: {}",
                   res < 0 ? std::strerror(-res) : "no error");
    // Publish the returned buffers before the receive is armed again.
    m_ring.publish_buffers();
}

void engine_core::handle_errqueue(ip_family family, std::int32_t res,
                                  std::int64_t realtime_offset) {
    family_state& fs = m_families[family_index(family)];
    fs.err_reading = false;
    if (res == -EAGAIN)
        return; // drained
    if (res < 0) {
        if (res != -ECANCELED)
            ICMPENGINE_LOG(sockets, warn, "reading the error queue: {}", std::strerror(-res));
        return;
    }
    fs.err_again = true; // there may be more

    const sock_extended_err* ee = nullptr;
    std::int64_t rx_mono = 0;
    msghdr& msg = fs.err_msg;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
        if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_RECVERR) ||
            (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_RECVERR))
            ee = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(cm));
        else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS)
            rx_mono = monotonic_stamp(cm, realtime_offset);
    }
    if (ee == nullptr) {
        ++m_stats.invalid_packets;
        return;
    }
    const ip_address destination =
        address_from(reinterpret_cast<const sockaddr*>(&fs.err_name), msg.msg_namelen);
    icmp_message m;
    const auto size = std::min<std::size_t>(static_cast<std::size_t>(res), fs.err_data.size());
    if (parse_quoted_echo(std::span<const std::byte>(fs.err_data.data(), size), family, m) !=
        parse_error::none) {
        ++m_stats.foreign_packets;
        return;
    }
    if (ee->ee_origin == SO_EE_ORIGIN_ICMP || ee->ee_origin == SO_EE_ORIGIN_ICMP6) {
        // The offender's sockaddr follows the extended error (SO_EE_OFFENDER).
        const auto* offender = reinterpret_cast<const sockaddr*>(ee + 1);
        const std::size_t room =
            fs.err_control.size() -
            static_cast<std::size_t>(reinterpret_cast<const std::byte*>(offender) -
                                     fs.err_control.data());
        m.type = ee->ee_type;
        m.code = ee->ee_code;
        match_error(family, m, destination, address_from(offender, room), rx_mono, false);
    } else if (ee->ee_origin == SO_EE_ORIGIN_LOCAL) {
        m.type = 0;
        m.code = 0;
        match_error(family, m, destination, destination, rx_mono, true);
    } else {
        ++m_stats.foreign_packets;
    }
}

void engine_core::process_message(ip_family family, const datagram& d, std::int64_t rx_mono) {
    const bool raw = m_families[family_index(family)].socket.kind == socket_mode::raw;
    const parsed_datagram p = parse_datagram(d, family, raw, m_raw_identifier);
    switch (p.what) {
    case parsed_datagram::kind::echo_reply:
        match_reply(p, rx_mono);
        return;
    case parsed_datagram::kind::icmp_error:
        match_error(family, p.message, *p.message.quoted_destination, p.source, rx_mono, false);
        return;
    case parsed_datagram::kind::foreign:
        ++m_stats.foreign_packets;
        return;
    case parsed_datagram::kind::invalid:
        ++m_stats.invalid_packets;
        ICMPENGINE_LOG(matching, debug, "invalid packet from {}: parse error {}",
                       p.source.to_string(), static_cast<int>(p.error));
        return;
    }
}

void engine_core::act_on(const match_verdict& v, const ip_address& peer, std::uint16_t sequence,
                         bool is_error, std::int64_t rx_mono) {
    // A stray echo reply's RTT, while its slot still holds the send time.
    std::optional<std::chrono::nanoseconds> rtt;
    if (!is_error && v.slot != no_slot && v.what != match_verdict::kind::matched) {
        const std::int64_t tx_mono = m_slots[v.slot].tx_mono;
        rtt = std::chrono::nanoseconds(receive_time(rx_mono, tx_mono) - tx_mono);
    }
    switch (v.what) {
    case match_verdict::kind::matched:
        return;
    case match_verdict::kind::duplicate:
        ++m_stats.duplicate_replies;
        report_stray(stray_reply::kind::duplicate, peer, sequence, rtt);
        return;
    case match_verdict::kind::late:
        ++m_stats.late_replies;
        report_stray(stray_reply::kind::late, peer, sequence, rtt);
        return;
    case match_verdict::kind::wrong_source:
        ++m_stats.wrong_source;
        [[fallthrough]];
    case match_verdict::kind::invalid:
        ++m_stats.invalid_packets; // forged, corrupted, or not ours at all
        ICMPENGINE_LOG(matching, debug, "{} from {} seq {}{}", v.reason, peer.to_string(), sequence,
                       is_error ? " (ICMP error)" : "");
        return;
    }
}

std::int64_t engine_core::receive_time(std::int64_t rx_mono, std::int64_t tx_mono) const noexcept {
    const std::int64_t now = m_harvest_mono;
    if (rx_mono <= 0 || rx_mono < tx_mono || rx_mono > now)
        return now; // no usable kernel timestamp (or the wall clock stepped)
    return rx_mono;
}

void engine_core::report_stray(stray_reply::kind what, const ip_address& from,
                               std::uint16_t sequence,
                               std::optional<std::chrono::nanoseconds> rtt) {
    if (!m_config.on_stray)
        return;
    // Called from the middle of a batch of completions: an exception must
    // not lose the rest of the batch (run() rethrows it at its end).
    try {
        m_config.on_stray(stray_reply{what, from, sequence, rtt});
    } catch (...) {
        record_spawn_exception(std::current_exception());
    }
}

void engine_core::match_reply(const parsed_datagram& p, std::int64_t rx_mono) {
    const icmp_message& m = p.message;
    const match_verdict v = m_matcher.match(m_slots, m, p.source, p.payload_length, false);
    act_on(v, p.source, m.sequence, false, rx_mono);
    if (v.what != match_verdict::kind::matched)
        return;
    const slot& s = m_slots[v.slot];
    // Truncated: a prefix of what we sent.
    const std::size_t payload_length =
        p.payload_length == unknown_length ? s.payload_size : p.payload_length;
    rx_mono = receive_time(rx_mono, s.tx_mono);
    if (rx_mono > deadline_of(v.slot)) {
        // Arrived after its deadline: the ping timed out, the reply is late,
        // whatever order the timer and the reply were processed in.
        ++m_stats.late_replies;
        report_stray(stray_reply::kind::late, p.source, m.sequence,
                     std::chrono::nanoseconds(rx_mono - s.tx_mono));
        end(v.slot, ping_status::timeout);
        return;
    }
    ping_result r = result_for(v.slot);
    r.rtt = std::chrono::nanoseconds(rx_mono - s.tx_mono);
    r.from = p.source;
    r.ttl = static_cast<std::uint8_t>(std::clamp(p.ttl, 0, 255));
    r.tos = static_cast<std::int16_t>(std::clamp(p.tos, -1, 255));
    r.icmp_type = m.type;
    r.icmp_code = m.code;
    r.bytes = static_cast<std::uint32_t>(payload_length);
    end(v.slot, ping_status::reply, std::move(r));
}

void engine_core::match_error(ip_family family, const icmp_message& m,
                              const ip_address& destination, const ip_address& reporter,
                              std::int64_t rx_mono, bool local) {
    const match_verdict v = m_matcher.match(m_slots, m, destination, 0, true);
    act_on(v, destination, m.sequence, true, rx_mono);
    if (v.what != match_verdict::kind::matched)
        return;
    const slot& s = m_slots[v.slot];
    rx_mono = receive_time(rx_mono, s.tx_mono);
    if (rx_mono > deadline_of(v.slot)) {
        ++m_stats.late_replies;
        end(v.slot, ping_status::timeout);
        return;
    }
    const ping_status status =
        local ? ping_status::send_error : error_status(family, m.type, m.code);
    ping_result r = result_for(v.slot);
    r.rtt = std::chrono::nanoseconds(rx_mono - s.tx_mono);
    r.from = reporter;
    r.icmp_type = m.type;
    r.icmp_code = m.code;
    if (local)
        r.error = std::error_code(EMSGSIZE, std::system_category());
    ICMPENGINE_LOG(matching, debug, "ICMP error type {} code {} from {} for ping to {}", m.type,
                   m.code, reporter.to_string(), destination.to_string());
    end(v.slot, status, std::move(r));
}

} // namespace icmpengine::detail
