// SPDX-License-Identifier: MIT
#include <icmpengine/errors.hpp>

#include <string>

namespace icmpengine {
namespace {

class category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "icmpengine"; }

    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
        case errc::ping_group_range:
            return "the kernel refused an ICMP datagram socket: this process's group is outside "
                   "net.ipv4.ping_group_range, and it lacks CAP_NET_RAW for a raw socket; fix: "
                   "sysctl -w net.ipv4.ping_group_range=\"0 2147483647\" (or grant CAP_NET_RAW)";
        case errc::no_cap_net_raw:
            return "a raw ICMP socket needs CAP_NET_RAW: run as root, or "
                   "setcap cap_net_raw+ep on the program, or use socket_mode::datagram";
        case errc::family_not_supported:
            return "ICMP sockets for this address family are not supported here (IPv6 disabled? "
                   "see net.ipv6.conf.all.disable_ipv6)";
        case errc::io_uring_unavailable:
            return "io_uring is unavailable: the kernel is older than 6.0, or io_uring is "
                   "disabled (sysctl kernel.io_uring_disabled), or RLIMIT_MEMLOCK is too low";
        case errc::stopped:
            return "the engine was stopped";
        case errc::no_cap_net_admin:
            return "setting a socket mark (SO_MARK) needs CAP_NET_ADMIN (or CAP_NET_RAW, since "
                   "Linux 5.17): run as root, or setcap cap_net_admin+ep on the program, or set "
                   "no mark";
        }
        return "unknown icmpengine error " + std::to_string(value);
    }
};

} // namespace

const std::error_category& error_category() noexcept {
    static const category instance;
    return instance;
}

} // namespace icmpengine
