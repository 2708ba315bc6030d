// SPDX-License-Identifier: MIT
// icmpengine::ip_address: parsing, formatting and hashing.
//
// Parsing is strict on purpose: an address is what a person typed on a
// command line or in a config file, and a lenient parser turns typos into
// pings to the wrong host. IPv4 is dotted-quad only (no "127.1", no hex, no
// octal: inet_aton(3) accepts all of those); IPv6 is whatever inet_pton(3)
// accepts, optionally in brackets and with a "%scope" (RFC 4007, section 11).
// No name resolution is done, except that a scope may name an interface.
#include <icmpengine/ip_address.hpp>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace icmpengine {
namespace {

/// The longest text that can be an address: brackets, the longest IPv6 text
/// ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", INET6_ADDRSTRLEN - 1
/// characters), '%' and the longest interface name (IF_NAMESIZE - 1, which
/// is also longer than any decimal scope id). Checked first, so that the
/// rest of the parser works in fixed-size stack buffers.
constexpr std::size_t max_text_length = 2 + (INET6_ADDRSTRLEN - 1) + 1 + (IF_NAMESIZE - 1);
// The error messages below spell these numbers out.
static_assert(max_text_length == 63 && IF_NAMESIZE == 16);

/// How much of the input an error message quotes before cutting it off.
constexpr std::size_t max_quoted_length = 80;

/// What parse_text() found. On success `reason` is null and `address` holds
/// the result. On failure `reason` is static text saying what is wrong,
/// `subject` (possibly empty) is the part of the input it is about, and
/// `error` (possibly 0) an errno from a failed lookup. Nothing here
/// allocates, so that try_parse() can be noexcept without catching anything.
struct parse_outcome {
    ip_address address;
    const char* reason = nullptr;
    std::string_view subject;
    int error = 0;
};

constexpr parse_outcome failure(const char* reason, std::string_view subject = {},
                                int error = 0) noexcept {
    return parse_outcome{ip_address{}, reason, subject, error};
}

constexpr const char* not_an_address = "not a dotted-quad IPv4 or an IPv6 address";

constexpr bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

constexpr bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/// True if one of the dot-separated decimal numbers in `dotted` has a
/// leading zero ("01.2.3.4", "1.2.3.010"). inet_aton(3) and therefore
/// ping(8) read such a number as octal, while other tools read it as
/// decimal; rather than guess, refuse it. glibc's inet_pton(3) refuses it
/// too, but without saying why, and other libcs need not.
constexpr bool has_leading_zero(std::string_view dotted) noexcept {
    bool at_start = true;
    for (std::size_t i = 0; i < dotted.size(); ++i) {
        const char c = dotted[i];
        if (c == '.') {
            at_start = true;
            continue;
        }
        if (at_start && c == '0' && i + 1 < dotted.size() && is_digit(dotted[i + 1]))
            return true;
        at_start = false;
    }
    return false;
}

/// Resolves the part after '%': a decimal interface index, or an interface
/// name for if_nametoindex(3). A name made only of digits is read as an
/// index, as getaddrinfo(3) does; Linux allows such names, but they cannot
/// be told apart from indexes in this syntax.
parse_outcome parse_scope(std::string_view scope, std::uint32_t& scope_id) noexcept {
    if (scope.empty())
        return failure("empty scope after '%'");
    bool numeric = true;
    for (char c : scope)
        numeric = numeric && is_digit(c);
    if (numeric) {
        std::uint64_t value = 0;
        for (char c : scope) {
            value = value * 10 + static_cast<std::uint64_t>(c - '0');
            // Checked per digit so that a long run of digits cannot overflow.
            if (value > UINT32_MAX)
                return failure("scope id above 4294967295");
        }
        scope_id = static_cast<std::uint32_t>(value);
        return {};
    }
    if (scope.size() >= IF_NAMESIZE)
        return failure("interface name longer than 15 characters");
    char name[IF_NAMESIZE] = {};
    std::memcpy(name, scope.data(), scope.size());
    errno = 0;
    const unsigned index = if_nametoindex(name);
    if (index == 0) {
        // glibc reports an unknown name as ENODEV; anything else (EMFILE,
        // ENOMEM for the socket it opens) is a failure to look it up at all.
        const int e = errno;
        if (e == ENODEV || e == 0 || e == ENXIO)
            return failure("unknown interface", scope);
        return failure("cannot look up interface", scope, e);
    }
    scope_id = index;
    return {};
}

/// The non-throwing core of parse() and try_parse().
parse_outcome parse_text(std::string_view text) noexcept {
    if (text.empty())
        return failure("empty text");
    if (text.size() > max_text_length)
        return failure("longer than the longest address text (63 characters)");
    for (char c : text) {
        // inet_pton(3) takes a C string: an embedded NUL would silently cut
        // the text short ("1.2.3.4\0junk" would parse), so refuse it here.
        if (c == '\0')
            return failure("contains a NUL character");
        if (is_space(c))
            return failure("contains whitespace");
    }

    // "[2001:db8::1]" as in URLs (RFC 3986): the brackets must enclose the
    // whole text, and only an IPv6 address.
    bool bracketed = false;
    if (text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos)
            return failure("'[' without a closing ']'");
        if (close != text.size() - 1)
            return failure("text after the closing ']'");
        text = text.substr(1, text.size() - 2);
        if (text.empty())
            return failure("nothing between the brackets");
        bracketed = true;
    }
    if (text.find_first_of("[]") != std::string_view::npos)
        return failure("brackets must enclose the whole address, as in \"[2001:db8::1]\"");

    std::string_view address = text;
    std::string_view scope;
    const std::size_t percent = text.find('%');
    if (percent != std::string_view::npos) {
        address = text.substr(0, percent);
        scope = text.substr(percent + 1);
        if (address.empty())
            return failure("no address before '%'");
    }

    char buffer[max_text_length + 1] = {};
    std::memcpy(buffer, address.data(), address.size());

    if (address.find(':') == std::string_view::npos) {
        if (bracketed)
            return failure("brackets are only for IPv6 addresses");
        if (percent != std::string_view::npos)
            return failure("a %scope is only for IPv6 addresses");
        if (has_leading_zero(address))
            return failure("leading zeros are ambiguous (inet_aton reads them as octal)");
        std::array<std::uint8_t, 4> bytes{};
        if (inet_pton(AF_INET, buffer, bytes.data()) != 1)
            return failure(not_an_address);
        parse_outcome ok;
        ok.address = ip_address::from_v4_bytes(bytes);
        return ok;
    }

    // An IPv6 address may end in dotted-quad form ("::ffff:192.0.2.1").
    if (const std::size_t colon = address.rfind(':');
        address.find('.', colon) != std::string_view::npos &&
        has_leading_zero(address.substr(colon + 1)))
        return failure("leading zeros are ambiguous (inet_aton reads them as octal)");
    std::array<std::uint8_t, 16> bytes{};
    if (inet_pton(AF_INET6, buffer, bytes.data()) != 1)
        return failure(not_an_address);
    std::uint32_t scope_id = 0;
    if (percent != std::string_view::npos) {
        if (parse_outcome s = parse_scope(scope, scope_id); s.reason != nullptr)
            return s;
    }
    parse_outcome ok;
    ok.address = ip_address::from_v6_bytes(bytes, scope_id);
    return ok;
}

/// `text` for an error message: cut to max_quoted_length, with bytes that
/// are not printable ASCII written as \xNN so that the message stays one
/// readable line (and a NUL does not end what()).
std::string quote(std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    const std::size_t n = std::min(text.size(), max_quoted_length);
    out.reserve(n + 2);
    out += '"';
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    out += '"';
    if (n < text.size())
        out += "... (" + std::to_string(text.size()) + " characters)";
    return out;
}

/// The finaliser of splitmix64 (Steele, Lea, Flood: "Fast splittable
/// pseudorandom number generators", 2014): a bijection on 64-bit values in
/// which every input bit affects every output bit.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9;
    x ^= x >> 27;
    x *= 0x94d049bb133111eb;
    x ^= x >> 31;
    return x;
}

} // namespace

ip_address ip_address::from_v4_bytes(const std::array<std::uint8_t, 4>& bytes) noexcept {
    ip_address a;
    std::memcpy(a.m_bytes.data(), bytes.data(), bytes.size());
    return a;
}

ip_address ip_address::from_v6_bytes(const std::array<std::uint8_t, 16>& bytes,
                                     std::uint32_t scope_id) noexcept {
    ip_address a;
    a.m_bytes = bytes;
    a.m_scope_id = scope_id;
    a.m_family = ip_family::v6;
    return a;
}

ip_address ip_address::parse(std::string_view text) {
    const parse_outcome r = parse_text(text);
    if (r.reason == nullptr)
        return r.address;
    // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict,
    // GCC bug 105329) about `"literal" + std::string`.
    std::string message = "invalid IP address ";
    message += quote(text);
    message += ": ";
    message += r.reason;
    if (!r.subject.empty()) {
        message += ' ';
        message += quote(r.subject);
    }
    if (r.error != 0) {
        message += ": ";
        message += std::generic_category().message(r.error);
    }
    throw std::invalid_argument(message);
}

std::optional<ip_address> ip_address::try_parse(std::string_view text) noexcept {
    const parse_outcome r = parse_text(text);
    if (r.reason != nullptr)
        return std::nullopt;
    return r.address;
}

bool ip_address::is_loopback() const noexcept {
    if (is_v4())
        return m_bytes[0] == 127;
    // Only ::1. The IPv4-mapped ::ffff:127.0.0.1 is not loopback for the
    // kernel either: a socket sending to it uses the IPv6 stack and leaves
    // through whatever route ::ffff:0:0/96 has.
    for (std::size_t i = 0; i < 15; ++i)
        if (m_bytes[i] != 0)
            return false;
    return m_bytes[15] == 1;
}

bool ip_address::is_unspecified() const noexcept {
    // 0.0.0.0 or ::, whatever the scope.
    for (std::uint8_t b : m_bytes)
        if (b != 0)
            return false;
    return true;
}

std::string ip_address::to_string() const {
    // glibc's inet_ntop(3) writes the RFC 5952 form: lower case, leading
    // zeros dropped, the longest run of two or more zero groups as "::".
    char buffer[INET6_ADDRSTRLEN] = {};
    const char* text = is_v4() ? inet_ntop(AF_INET, m_bytes.data(), buffer, sizeof buffer)
                               : inet_ntop(AF_INET6, m_bytes.data(), buffer, sizeof buffer);
    // inet_ntop fails only for a bad family or a short buffer, neither of
    // which can happen here.
    std::string out = text != nullptr ? text : "";
    if (m_scope_id != 0) {
        out += '%';
        out += std::to_string(m_scope_id);
    }
    return out;
}

std::size_t ip_address::hash() const noexcept {
    // Two 64-bit loads cover the 16 address bytes (memcpy: the array need
    // not be aligned for uint64_t). The byte order of the loads differs
    // between hosts, which does not matter for a hash that is never stored.
    std::uint64_t low = 0;
    std::uint64_t high = 0;
    std::memcpy(&low, m_bytes.data(), sizeof low);
    std::memcpy(&high, m_bytes.data() + sizeof low, sizeof high);
    // The family takes part: 0.0.0.0 and :: have the same bytes.
    const std::uint64_t tag = std::uint64_t{m_scope_id} << 8 | static_cast<std::uint64_t>(m_family);
    // Each step is a bijection of the word it absorbs, so two addresses
    // differing in one word never collide, and the golden-ratio offset keeps
    // the all-zero address from hashing to 0.
    std::uint64_t h = mix64(tag + 0x9e3779b97f4a7c15);
    h = mix64(h ^ low);
    h = mix64(h ^ high);
    return static_cast<std::size_t>(h);
}

} // namespace icmpengine
