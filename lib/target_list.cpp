// SPDX-License-Identifier: MIT
#include <icmpengine/target_list.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <istream>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace icmpengine {
namespace {

// IPv6 prefixes and ranges need 128-bit arithmetic. unsigned __int128 is a
// GCC / Clang extension; __extension__ keeps -Wpedantic quiet about it. It
// stays in this file: the public header has no use for it.
__extension__ typedef unsigned __int128 uint128;

std::string quoted(std::string_view text) {
    std::string s;
    s.reserve(text.size() + 2);
    s += '"';
    s += text;
    s += '"';
    return s;
}

uint128 to_uint128(const ip_address& address) noexcept {
    if (address.is_v4())
        return address.v4_value();
    uint128 value = 0;
    for (const std::uint8_t byte : address.bytes())
        value = value << 8 | byte;
    return value;
}

ip_address v6_from_uint128(uint128 value, std::uint32_t scope_id) noexcept {
    std::array<std::uint8_t, 16> bytes{};
    for (std::size_t i = bytes.size(); i-- > 0;) {
        bytes[i] = static_cast<std::uint8_t>(value);
        value >>= 8;
    }
    return ip_address::from_v6_bytes(bytes, scope_id);
}

// The decimal text of span + 1, the number of addresses in [a, a + span].
// That is 2^128 for all of IPv6, which does not fit in a uint128, hence the
// increment on the digits.
std::string count_text(uint128 span) {
    std::string digits; // least significant first
    do {
        digits += static_cast<char>('0' + static_cast<int>(span % 10));
        span /= 10;
    } while (span != 0);
    std::size_t i = 0;
    for (; i < digits.size() && digits[i] == '9'; ++i)
        digits[i] = '0';
    if (i == digits.size())
        digits += '1';
    else
        ++digits[i];
    std::reverse(digits.begin(), digits.end());
    return digits;
}

// Throws unless [first, first + span] holds at most `cap` addresses.
void check_cap(uint128 span, std::uint64_t cap, std::string_view what) {
    if (span >= cap) // span + 1 > cap, without overflowing at 2^128
        throw std::invalid_argument("target_list: " + std::string(what) + " expands to " +
                                    count_text(span) + " addresses, more than the cap of " +
                                    std::to_string(cap));
}

std::string_view family_name(ip_family family) noexcept {
    return family == ip_family::v4 ? "IPv4" : "IPv6";
}

constexpr std::string_view white_space = " \t\r\n\v\f";

std::string_view trim(std::string_view text) noexcept {
    const auto first = text.find_first_not_of(white_space);
    if (first == std::string_view::npos)
        return {};
    const auto last = text.find_last_not_of(white_space);
    return text.substr(first, last - first + 1);
}

} // namespace

resolution resolve_host_name(const std::string& name, family_filter filter) {
    if (name.find('\0') != std::string::npos)
        return {{}, "the name contains a NUL character"};
    addrinfo hints{};
    hints.ai_family = filter == family_filter::v4   ? AF_INET
                      : filter == family_filter::v6 ? AF_INET6
                                                    : AF_UNSPEC;
    // One answer per address: without a socket type getaddrinfo repeats
    // each address for SOCK_STREAM, SOCK_DGRAM and SOCK_RAW. fping asks for
    // SOCK_RAW too.
    hints.ai_socktype = SOCK_RAW;
    addrinfo* answers = nullptr;
    if (const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &answers); rc != 0) {
        std::string error = ::gai_strerror(rc);
        if (rc == EAI_SYSTEM)
            error += ": " + std::generic_category().message(errno);
        return {{}, std::move(error)};
    }
    const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(answers, &::freeaddrinfo);

    resolution result;
    for (const addrinfo* ai = answers; ai != nullptr; ai = ai->ai_next) {
        ip_address address;
        if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(sockaddr_in)) {
            const auto* sin = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
            std::array<std::uint8_t, 4> bytes{};
            std::memcpy(bytes.data(), &sin->sin_addr, bytes.size());
            address = ip_address::from_v4_bytes(bytes);
        } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(sockaddr_in6)) {
            const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
            std::array<std::uint8_t, 16> bytes{};
            std::memcpy(bytes.data(), &sin6->sin6_addr, bytes.size());
            address = ip_address::from_v6_bytes(bytes, sin6->sin6_scope_id);
        } else {
            continue;
        }
        // /etc/hosts may list an address twice; the list is short, so a
        // linear search keeps resolver order without a set.
        if (std::find(result.addresses.begin(), result.addresses.end(), address) ==
            result.addresses.end())
            result.addresses.push_back(address);
    }
    if (result.addresses.empty())
        result.error = "no IPv4 or IPv6 address";
    return result;
}

target_list::target_list(target_list_options options) : m_options(std::move(options)) {
    if (m_options.cap == 0)
        throw std::invalid_argument("target_list: the cap must be at least 1 (is 0)");
    if (!m_options.resolve)
        m_options.resolve = resolve_host_name;
}

bool target_list::allows(ip_family family) const noexcept {
    switch (m_options.family) {
    case family_filter::v4:
        return family == ip_family::v4;
    case family_filter::v6:
        return family == ip_family::v6;
    case family_filter::any:
        break;
    }
    return true;
}

void target_list::require_family(const ip_address& address, std::string_view text) const {
    if (!allows(address.family()))
        throw std::invalid_argument(
            "target_list: " + std::string(text) + " is " +
            std::string(family_name(address.family())) + ", but only " +
            std::string(family_name(address.is_v4() ? ip_family::v6 : ip_family::v4)) +
            " is allowed");
}

std::size_t target_list::add_address(const ip_address& address) {
    require_family(address, quoted(address.to_string()));
    return insert(address, {}) ? 1 : 0;
}

std::size_t target_list::add_cidr(std::string_view cidr) {
    const auto slash = cidr.rfind('/');
    if (slash == std::string_view::npos)
        throw std::invalid_argument("target_list: " + quoted(cidr) +
                                    " is not a CIDR prefix (expected ADDRESS/LENGTH)");
    const std::string_view address_text = cidr.substr(0, slash);
    const std::string_view length_text = cidr.substr(slash + 1);
    const auto address = ip_address::try_parse(address_text);
    if (!address)
        throw std::invalid_argument("target_list: CIDR prefix " + quoted(cidr) + ": " +
                                    quoted(address_text) + " is not an IP address");
    const unsigned bits = address->is_v4() ? 32 : 128;
    // Digits only: from_chars takes no sign or white space; three digits at
    // most keep "0000000024" from passing as 24.
    unsigned length = 0;
    const auto [end, ec] =
        std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
    if (length_text.empty() || length_text.size() > 3 || ec != std::errc{} ||
        end != length_text.data() + length_text.size() || length > bits)
        throw std::invalid_argument("target_list: CIDR prefix " + quoted(cidr) +
                                    ": the prefix length " + quoted(length_text) +
                                    " is not a number from 0 to " + std::to_string(bits));
    require_family(*address, "CIDR prefix " + quoted(cidr));

    // Host bits set ("198.18.0.5/30") are cleared, as fping -g does.
    if (address->is_v4()) {
        const std::uint32_t mask = length == 0 ? 0 : ~std::uint32_t{0} << (32 - length);
        std::uint32_t first = address->v4_value() & mask;
        uint128 span = ~mask; // last - first
        if (length < 31) {    // leave out the network and the broadcast address
            ++first;
            span -= 2;
        }
        check_cap(span, m_options.cap, "CIDR prefix " + quoted(cidr));
        return add_block(ip_address::from_v4(first), static_cast<std::uint64_t>(span) + 1);
    }
    const uint128 mask = length == 0 ? 0 : ~uint128{0} << (128 - length);
    const uint128 first = to_uint128(*address) & mask;
    const uint128 span = ~mask;
    check_cap(span, m_options.cap, "CIDR prefix " + quoted(cidr));
    return add_block(v6_from_uint128(first, address->scope_id()),
                     static_cast<std::uint64_t>(span) + 1);
}

std::size_t target_list::add_range(std::string_view first, std::string_view last) {
    const std::string what = "range " + quoted(first) + " " + quoted(last);
    const auto first_address = ip_address::try_parse(first);
    if (!first_address)
        throw std::invalid_argument("target_list: " + what + ": " + quoted(first) +
                                    " is not an IP address");
    const auto last_address = ip_address::try_parse(last);
    if (!last_address)
        throw std::invalid_argument("target_list: " + what + ": " + quoted(last) +
                                    " is not an IP address");
    return add_range_of(*first_address, *last_address, what);
}

std::size_t target_list::add_range(const ip_address& first, const ip_address& last) {
    return add_range_of(first, last,
                        "range " + quoted(first.to_string()) + " " + quoted(last.to_string()));
}

std::size_t target_list::add_range_of(const ip_address& first, const ip_address& last,
                                      const std::string& what) {
    if (first.family() != last.family())
        throw std::invalid_argument("target_list: " + what + ": the first address is " +
                                    std::string(family_name(first.family())) + " and the last is " +
                                    std::string(family_name(last.family())));
    if (first.scope_id() != last.scope_id())
        throw std::invalid_argument("target_list: " + what +
                                    ": the two addresses have different scopes");
    require_family(first, what);
    if (last < first)
        throw std::invalid_argument("target_list: " + what +
                                    ": the first address is above the last");
    const uint128 span = to_uint128(last) - to_uint128(first);
    check_cap(span, m_options.cap, what);
    return add_block(first, static_cast<std::uint64_t>(span) + 1);
}

// Adds `count` consecutive addresses from `first`; the caller has checked
// the family and the cap (so count <= cap fits in 64 bits).
std::size_t target_list::add_block(const ip_address& first, std::uint64_t count) {
    if (count > m_targets.max_size() - m_targets.size())
        throw std::length_error("target_list: " + std::to_string(count) +
                                " more targets do not fit in memory");
    reserve(static_cast<std::size_t>(count));
    std::size_t added = 0;
    if (first.is_v4()) {
        const std::uint32_t base = first.v4_value();
        for (std::uint64_t i = 0; i < count; ++i)
            added += insert(ip_address::from_v4(base + static_cast<std::uint32_t>(i)), {}) ? 1 : 0;
        return added;
    }
    const uint128 base = to_uint128(first);
    for (std::uint64_t i = 0; i < count; ++i)
        added += insert(v6_from_uint128(base + i, first.scope_id()), {}) ? 1 : 0;
    return added;
}

std::size_t target_list::add_name(std::string_view name) {
    if (name.empty())
        throw std::invalid_argument("target_list: add_name: the name \"\" is empty");
    return add_name_at(name, 0);
}

std::size_t target_list::add_name_at(std::string_view name, std::size_t line) {
    // Address literals need no resolver; they are checked against the filter
    // here, the way getaddrinfo would refuse them for the other family.
    if (const auto literal = ip_address::try_parse(name)) {
        if (!allows(literal->family())) {
            m_failures.push_back(
                {std::string(name),
                 "an " + std::string(family_name(literal->family())) + " address, but only " +
                     std::string(family_name(literal->is_v4() ? ip_family::v6 : ip_family::v4)) +
                     " is allowed",
                 line});
            return 0;
        }
        return insert(*literal, name) ? 1 : 0;
    }

    const std::string owned(name);
    resolution found = m_options.resolve(owned, m_options.family);
    // A resolver may hand back more than was asked for: keep the filter.
    std::erase_if(found.addresses, [this](const ip_address& a) { return !allows(a.family()); });
    if (found.addresses.empty()) {
        std::string reason = std::move(found.error);
        if (reason.empty())
            reason = m_options.family == family_filter::any  ? "no address"
                     : m_options.family == family_filter::v4 ? "no IPv4 address"
                                                             : "no IPv6 address";
        m_failures.push_back({owned, std::move(reason), line});
        return 0;
    }
    if (!m_options.all_addresses)
        found.addresses.resize(1);
    std::size_t added = 0;
    for (const ip_address& address : found.addresses)
        added += insert(address, name) ? 1 : 0;
    return added;
}

std::size_t target_list::add_stream(std::istream& in) {
    std::size_t added = 0;
    std::size_t line_number = 0;
    std::string line;
    while (std::getline(in, line)) {
        ++line_number;
        std::string_view text = line;
        text = trim(text.substr(0, text.find('#')));
        if (text.empty())
            continue;
        if (text.find_first_of(white_space) != std::string_view::npos) {
            m_failures.push_back({std::string(text),
                                  "more than one word: expected one address or host name per line",
                                  line_number});
            continue;
        }
        added += add_name_at(text, line_number);
    }
    if (in.bad())
        throw std::runtime_error("target_list: reading the target stream failed after line " +
                                 std::to_string(line_number));
    return added;
}

// --- de-duplication index ---------------------------------------------------

bool target_list::insert(const ip_address& address, std::string_view name) {
    if ((m_targets.size() + 1) * 2 > m_slots.size())
        rehash(std::max<std::size_t>(16, m_slots.size() * 2));
    const std::size_t slot = find_slot(address);
    if (m_slots[slot] != 0)
        return false;
    m_targets.push_back({address, std::string(name)});
    m_slots[slot] = m_targets.size();
    return true;
}

// Makes room for `more` targets at once, so that a large expansion grows
// neither the vector nor the index while it runs. Geometric, so that many
// small calls stay linear overall.
void target_list::reserve(std::size_t more) {
    const std::size_t wanted = m_targets.size() + more;
    if (wanted > m_targets.capacity())
        m_targets.reserve(std::max(wanted, m_targets.capacity() * 2));
    const std::size_t slots = std::bit_ceil(std::max<std::size_t>(16, wanted * 2));
    if (slots > m_slots.size())
        rehash(slots);
}

// The slot holding `address`, or the empty slot where it belongs. The table
// is at most half full, so the probe ends.
std::size_t target_list::find_slot(const ip_address& address) const noexcept {
    const std::size_t mask = m_slots.size() - 1;
    std::size_t slot = address.hash() & mask;
    while (m_slots[slot] != 0 && m_targets[m_slots[slot] - 1].address != address)
        slot = (slot + 1) & mask;
    return slot;
}

// Builds the new table aside and swaps it in, so that bad_alloc leaves the
// old one intact.
void target_list::rehash(std::size_t slot_count) {
    std::vector<std::size_t> slots(slot_count, 0);
    const std::size_t mask = slot_count - 1;
    for (std::size_t i = 0; i < m_targets.size(); ++i) {
        std::size_t slot = m_targets[i].address.hash() & mask;
        while (slots[slot] != 0)
            slot = (slot + 1) & mask;
        slots[slot] = i + 1;
    }
    m_slots = std::move(slots);
}

} // namespace icmpengine
