// SPDX-License-Identifier: MIT
// icmpengine::ip_address: an IPv4 or IPv6 address as a small value type.
#pragma once

#include <icmpengine/export.hpp>

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace icmpengine {

enum class ip_family : std::uint8_t { v4, v6 };

/// An IPv4 or IPv6 address (with an optional IPv6 scope id for link-local
/// addresses). Comparable, hashable, 24 bytes.
///
///     auto a = icmpengine::ip_address::parse("127.0.0.1");
///     auto b = icmpengine::ip_address::parse("fe80::1%lo");
class ICMPENGINE_API ip_address {
  public:
    /// 0.0.0.0
    constexpr ip_address() noexcept = default;

    /// An IPv4 address from its 32-bit value in host byte order
    /// (`from_v4(0x7f000001)` is 127.0.0.1).
    static constexpr ip_address from_v4(std::uint32_t host_order) noexcept {
        ip_address a;
        a.m_bytes[0] = static_cast<std::uint8_t>(host_order >> 24);
        a.m_bytes[1] = static_cast<std::uint8_t>(host_order >> 16);
        a.m_bytes[2] = static_cast<std::uint8_t>(host_order >> 8);
        a.m_bytes[3] = static_cast<std::uint8_t>(host_order);
        return a;
    }
    /// An IPv4 address from its 4 bytes in network order.
    static ip_address from_v4_bytes(const std::array<std::uint8_t, 4>& bytes) noexcept;
    /// An IPv6 address from its 16 bytes in network order.
    static ip_address from_v6_bytes(const std::array<std::uint8_t, 16>& bytes,
                                    std::uint32_t scope_id = 0) noexcept;

    /// Parses dotted-quad IPv4 ("192.0.2.1") or IPv6 text ("2001:db8::1",
    /// "fe80::1%eth0", "fe80::1%2"). Throws std::invalid_argument naming the
    /// text and what is wrong with it. No name resolution is done.
    static ip_address parse(std::string_view text);
    /// As parse(), but returns std::nullopt instead of throwing.
    static std::optional<ip_address> try_parse(std::string_view text) noexcept;

    constexpr ip_family family() const noexcept { return m_family; }
    constexpr bool is_v4() const noexcept { return m_family == ip_family::v4; }
    constexpr bool is_v6() const noexcept { return m_family == ip_family::v6; }

    /// The IPv4 value in host byte order; 0 for IPv6 addresses.
    constexpr std::uint32_t v4_value() const noexcept {
        if (!is_v4())
            return 0;
        return std::uint32_t{m_bytes[0]} << 24 | std::uint32_t{m_bytes[1]} << 16 |
               std::uint32_t{m_bytes[2]} << 8 | std::uint32_t{m_bytes[3]};
    }
    /// The address bytes in network order: 4 significant bytes for IPv4
    /// (the rest are zero), 16 for IPv6.
    constexpr const std::array<std::uint8_t, 16>& bytes() const noexcept { return m_bytes; }
    /// IPv6 scope (interface index) for link-local addresses, else 0.
    constexpr std::uint32_t scope_id() const noexcept { return m_scope_id; }

    bool is_loopback() const noexcept;
    bool is_unspecified() const noexcept;

    /// Canonical text: "127.0.0.1", "::1", "fe80::1%2".
    std::string to_string() const;

    friend constexpr bool operator==(const ip_address&, const ip_address&) noexcept = default;
    /// Orders IPv4 before IPv6, then by address bytes, then by scope id.
    friend constexpr std::strong_ordering operator<=>(const ip_address& a,
                                                      const ip_address& b) noexcept {
        if (auto c = a.m_family <=> b.m_family; c != 0)
            return c;
        for (std::size_t i = 0; i < a.m_bytes.size(); ++i)
            if (auto c = a.m_bytes[i] <=> b.m_bytes[i]; c != 0)
                return c;
        return a.m_scope_id <=> b.m_scope_id;
    }

    /// A well-mixed 64-bit hash (also used by std::hash).
    std::size_t hash() const noexcept;

  private:
    std::array<std::uint8_t, 16> m_bytes{};
    std::uint32_t m_scope_id = 0;
    ip_family m_family = ip_family::v4;
};

} // namespace icmpengine

template <>
struct std::hash<icmpengine::ip_address> {
    std::size_t operator()(const icmpengine::ip_address& a) const noexcept { return a.hash(); }
};
