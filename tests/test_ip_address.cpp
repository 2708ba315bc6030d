// SPDX-License-Identifier: MIT
// Tests for icmpengine::ip_address (include/icmpengine/ip_address.hpp,
// lib/ip_address.cpp): what parse() accepts and how it says no, round trips
// through to_string(), the value-type operations, and the hash, including a
// randomised test that prints its seed.
#include "seed.hpp"

#include <icmpengine/ip_address.hpp>

#include <catch2/catch.hpp>

#include <net/if.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace {

using icmpengine::ip_address;
using icmpengine::ip_family;

/// The message parse() throws for `text`; fails the test if it does not throw
/// std::invalid_argument.
std::string parse_error(std::string_view text) {
    try {
        (void)ip_address::parse(text);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    FAIL("parse(\"" << std::string(text) << "\") did not throw std::invalid_argument");
    return {};
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

constexpr std::string_view not_an_address = "not a dotted-quad IPv4 or an IPv6 address";
constexpr std::string_view leading_zeros =
    "leading zeros are ambiguous (inet_aton reads them as octal)";

struct bad_input {
    std::string_view text;
    std::string_view reason;
};

// Printable inputs only: each message must quote the text verbatim.
constexpr bad_input bad_inputs[] = {
    {"", "empty text"},
    {"300.1.1.1", not_an_address},
    {"256.0.0.0", not_an_address},
    {"1.2.3.256", not_an_address},
    {"1.2.3", not_an_address},
    {"1.2.3.4.5", not_an_address},
    {"1.2.3.4.", not_an_address},
    {".1.2.3.4", not_an_address},
    {"1..2.3", not_an_address},
    {"127.1", not_an_address},
    {"2130706433", not_an_address},
    {"0x7f.0.0.1", not_an_address},
    {"-1.2.3.4", not_an_address},
    {"+1.2.3.4", not_an_address},
    {"1.2.3.4x", not_an_address},
    {"1.2.3.4/24", not_an_address},
    {"1.2.3.4:80", not_an_address},
    {"localhost", not_an_address},
    {"01.2.3.4", leading_zeros},
    {"1.2.3.04", leading_zeros},
    {"00.0.0.0", leading_zeros},
    {"127.000.000.001", leading_zeros},
    {"::ffff:01.2.3.4", leading_zeros},
    {" 1.2.3.4", "contains whitespace"},
    {"1.2.3.4 ", "contains whitespace"},
    {"1.2.3 .4", "contains whitespace"},
    {"::1 %1", "contains whitespace"},
    {"1.2.3.4%1", "a %scope is only for IPv6 addresses"},
    {"[1.2.3.4]", "brackets are only for IPv6 addresses"},
    {":::", not_an_address},
    {"1::2::3", not_an_address},
    {"1:2:3:4:5:6:7:8:9", not_an_address},
    {"1:2:3:4:5:6:7", not_an_address},
    {"12345::", not_an_address},
    {"::g", not_an_address},
    {":1::", not_an_address},
    {"::ffff:1.2.3", not_an_address},
    {"::ffff:1.2.3.4.5", not_an_address},
    {"fe80::1%", "empty scope after '%'"},
    {"%1", "no address before '%'"},
    {"fe80::1%4294967296", "scope id above 4294967295"},
    {"fe80::1%99999999999999999999999", "scope id above 4294967295"},
    {"fe80::1%abcdefghijklmnop", "interface name longer than 15 characters"},
    {"[::1", "'[' without a closing ']'"},
    {"::1]", "brackets must enclose the whole address"},
    {"::[1]", "brackets must enclose the whole address"},
    {"[::1]:80", "text after the closing ']'"},
    {"[[::1]]", "text after the closing ']'"},
    {"[fe80::1]%1", "text after the closing ']'"},
    {"[]", "nothing between the brackets"},
    // 64 characters, one more than the longest address text.
    {"1234567812345678123456781234567812345678123456781234567812345678",
     "longer than the longest address text (63 characters)"},
};
static_assert(std::size(bad_inputs) >= 30);

} // namespace

TEST_CASE("parse rejects malformed text with a message quoting it", "[address][parse]") {
    for (const bad_input& bad : bad_inputs) {
        INFO("input: \"" << std::string(bad.text) << "\"");
        CHECK_THROWS_AS(ip_address::parse(bad.text), std::invalid_argument);
        const std::string message = parse_error(bad.text);
        CHECK(contains(message, "invalid IP address \"" + std::string(bad.text) + "\": "));
        CHECK(contains(message, bad.reason));
        CHECK_FALSE(ip_address::try_parse(bad.text).has_value());
    }
}

TEST_CASE("parse's message matches the documented form", "[address][parse]") {
    CHECK(parse_error("300.1.1.1") ==
          "invalid IP address \"300.1.1.1\": not a dotted-quad IPv4 or an IPv6 address");
    CHECK(parse_error("01.2.3.4") == "invalid IP address \"01.2.3.4\": leading zeros are "
                                     "ambiguous (inet_aton reads them as octal)");
}

TEST_CASE("parse escapes bytes that are not printable ASCII in its message", "[address][parse]") {
    struct escaped_input {
        std::string_view text;
        std::string_view quoted;
        std::string_view reason;
    };
    // An embedded NUL must not cut the text short: inet_pton would read
    // "1.2.3.4" and accept it.
    const escaped_input inputs[] = {
        {std::string_view{"1.2.3.4\0junk", 12}, "\"1.2.3.4\\x00junk\"", "contains a NUL"},
        {std::string_view{"\0", 1}, "\"\\x00\"", "contains a NUL"},
        {"\t1.2.3.4", "\"\\x091.2.3.4\"", "contains whitespace"},
        {"1.2.3.4\n", "\"1.2.3.4\\x0a\"", "contains whitespace"},
        {"1.2.3.4\r", "\"1.2.3.4\\x0d\"", "contains whitespace"},
        {"1.2.3.4\x7f", "\"1.2.3.4\\x7f\"", std::string_view{not_an_address}},
        // U+FF11 FULLWIDTH DIGIT ONE, which looks like a 1.
        {"\xef\xbc\x91.2.3.4", "\"\\xef\\xbc\\x91.2.3.4\"", std::string_view{not_an_address}},
    };
    for (const escaped_input& in : inputs) {
        INFO("expected quote: " << std::string(in.quoted));
        const std::string message = parse_error(in.text);
        CHECK(contains(message, in.quoted));
        CHECK(contains(message, in.reason));
        CHECK_FALSE(ip_address::try_parse(in.text).has_value());
    }
}

TEST_CASE("parse cuts a very long text short in its message", "[address][parse]") {
    const std::string huge(100000, '1');
    const std::string message = parse_error(huge);
    CHECK(contains(message, "\"" + std::string(80, '1') + "\"... (100000 characters)"));
    CHECK(contains(message, "longer than the longest address text"));
    CHECK(message.size() < 300);
    CHECK_FALSE(ip_address::try_parse(huge).has_value());
}

TEST_CASE("parse reads only the characters of its string_view", "[address][parse]") {
    // No NUL after the view: the parser must not run past its end.
    const std::string_view view{"192.0.2.1junk", 9};
    CHECK(ip_address::parse(view) == ip_address::from_v4(0xc0000201));
    const std::string_view v6{"2001:db8::1%9junk", 11};
    CHECK(ip_address::parse(v6).to_string() == "2001:db8::1");
}

TEST_CASE("parse accepts the longest address texts", "[address][parse]") {
    const std::string longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    CHECK(ip_address::parse(longest).to_string() == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    CHECK(ip_address::parse("[" + longest + "%4294967295]").scope_id() == 4294967295u);
    CHECK(ip_address::parse("255.255.255.255").v4_value() == 0xffffffffu);
    // 63 characters: brackets, 45 address characters, '%' and a 15-character
    // name. The name does not exist, so the message is about the lookup,
    // not the length.
    const std::string text = "[" + longest + "%abcdefghijklmno]";
    REQUIRE(text.size() == 63);
    if (if_nametoindex("abcdefghijklmno") == 0)
        CHECK(contains(parse_error(text), "unknown interface \"abcdefghijklmno\""));
}

TEST_CASE("parse resolves an interface name in the scope", "[address][parse]") {
    const unsigned lo = if_nametoindex("lo");
    if (lo == 0) {
        WARN("no interface \"lo\" here: the named-scope test is skipped");
        return;
    }
    const ip_address a = ip_address::parse("fe80::1%lo");
    CHECK(a.scope_id() == lo);
    CHECK(a.to_string() == "fe80::1%" + std::to_string(lo));
    CHECK(ip_address::parse(a.to_string()) == a);
    CHECK(ip_address::parse("[fe80::1%lo]") == a);

    const char* missing = "nosuchif0";
    if (if_nametoindex(missing) == 0) {
        const std::string message = parse_error("fe80::1%nosuchif0");
        CHECK(message == "invalid IP address \"fe80::1%nosuchif0\": unknown interface "
                         "\"nosuchif0\"");
        CHECK_FALSE(ip_address::try_parse("fe80::1%nosuchif0").has_value());
    }
}

TEST_CASE("parse accepts numeric scopes", "[address][parse]") {
    CHECK(ip_address::parse("fe80::1%1").scope_id() == 1);
    CHECK(ip_address::parse("fe80::1%007").scope_id() == 7);
    CHECK(ip_address::parse("fe80::1%4294967295").scope_id() == 4294967295u);
    // Scope 0 is "no scope", so it prints without one.
    CHECK(ip_address::parse("fe80::1%0") == ip_address::parse("fe80::1"));
    CHECK(ip_address::parse("fe80::1%0").to_string() == "fe80::1");
}

TEST_CASE("to_string gives the canonical form, and it parses back", "[address][format]") {
    struct spelling {
        std::string_view text;
        std::string_view canonical;
    };
    const spelling spellings[] = {
        {"0.0.0.0", "0.0.0.0"},
        {"127.0.0.1", "127.0.0.1"},
        {"192.0.2.1", "192.0.2.1"},
        {"10.0.0.0", "10.0.0.0"},
        {"255.255.255.255", "255.255.255.255"},
        {"::", "::"},
        {"0:0:0:0:0:0:0:0", "::"},
        {"::1", "::1"},
        {"0:0:0:0:0:0:0:1", "::1"},
        {"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
        {"0:0:0:0:0:ffff:0102:0304", "::ffff:1.2.3.4"},
        {"::FFFF:1.2.3.4", "::ffff:1.2.3.4"},
        {"fe80::1%1", "fe80::1%1"},
        {"fe80:0:0:0:0:0:0:1%1", "fe80::1%1"},
        {"FE80::1%01", "fe80::1%1"},
        {"[fe80::1%2]", "fe80::1%2"},
        {"[2001:db8::1]", "2001:db8::1"},
        {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
        {"2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
        {"1:0:0:1:0:0:0:1", "1:0:0:1::1"},
        {"1:0:0:0:1:0:0:1", "1::1:0:0:1"},
        {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},
        {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
        {"1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"},
        {"ABCD:EF01:2345:6789:ABCD:EF01:2345:6789", "abcd:ef01:2345:6789:abcd:ef01:2345:6789"},
        {"64:ff9b::192.0.2.33", "64:ff9b::c000:221"},
        {"ff02::1%4294967295", "ff02::1%4294967295"},
    };
    for (const spelling& s : spellings) {
        INFO("input: " << std::string(s.text));
        const ip_address a = ip_address::parse(s.text);
        CHECK(a.to_string() == s.canonical);
        const ip_address b = ip_address::parse(a.to_string());
        CHECK(b == a);
        CHECK(b.to_string() == s.canonical);
        CHECK(ip_address::try_parse(s.text) == a);
        CHECK(a.is_v4() == (s.text.find(':') == std::string_view::npos));
    }
}

TEST_CASE("to_string round-trips random addresses", "[address][format]") {
    std::mt19937_64 rng(icmpengine::testing::test_seed("ip_address_round_trip"));
    for (int i = 0; i < 20000; ++i) {
        const ip_address v4 = ip_address::from_v4(static_cast<std::uint32_t>(rng()));
        REQUIRE(ip_address::parse(v4.to_string()) == v4);

        std::array<std::uint8_t, 16> bytes{};
        for (auto& b : bytes)
            // Mostly zero bytes, so that "::" compression is exercised.
            b = rng() % 3 == 0 ? static_cast<std::uint8_t>(rng()) : 0;
        const auto scope = rng() % 4 == 0 ? static_cast<std::uint32_t>(rng()) : 0;
        const ip_address v6 = ip_address::from_v6_bytes(bytes, scope);
        INFO("text: " << v6.to_string());
        REQUIRE(ip_address::parse(v6.to_string()) == v6);
        REQUIRE(ip_address::parse("[" + v6.to_string() + "]") == v6);
    }
}

TEST_CASE("from_v4, from_v4_bytes and v4_value agree", "[address]") {
    const ip_address a = ip_address::from_v4(0x7f000001);
    CHECK(a.is_v4());
    CHECK(a.family() == ip_family::v4);
    CHECK(a.v4_value() == 0x7f000001u);
    CHECK(a.to_string() == "127.0.0.1");
    CHECK(a == ip_address::parse("127.0.0.1"));
    CHECK(a == ip_address::from_v4_bytes({127, 0, 0, 1}));
    CHECK(a.scope_id() == 0);
    // Network order in bytes(), and the 12 bytes after an IPv4 are zero.
    const std::array<std::uint8_t, 16> expected{127, 0, 0, 1};
    CHECK(a.bytes() == expected);

    const ip_address b = ip_address::from_v4_bytes({192, 0, 2, 255});
    CHECK(b.v4_value() == 0xc00002ffu);
    CHECK(b.to_string() == "192.0.2.255");

    CHECK(ip_address{} == ip_address::from_v4(0));
    CHECK(ip_address{}.to_string() == "0.0.0.0");
}

TEST_CASE("from_v6_bytes keeps the bytes and the scope", "[address]") {
    const std::array<std::uint8_t, 16> bytes{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    const ip_address a = ip_address::from_v6_bytes(bytes, 3);
    CHECK(a.is_v6());
    CHECK(a.family() == ip_family::v6);
    CHECK(a.bytes() == bytes);
    CHECK(a.scope_id() == 3);
    CHECK(a.v4_value() == 0);
    CHECK(a.to_string() == "fe80::1%3");
    CHECK(a == ip_address::parse("fe80::1%3"));
    CHECK(ip_address::from_v6_bytes(bytes) == ip_address::parse("fe80::1"));
}

TEST_CASE("is_loopback and is_unspecified", "[address]") {
    for (const char* text : {"127.0.0.1", "127.0.0.0", "127.255.255.255", "127.1.2.3", "::1"})
        CHECK(ip_address::parse(text).is_loopback());
    // The IPv4-mapped form of 127.0.0.1 is not loopback to the kernel.
    for (const char* text : {"126.255.255.255", "128.0.0.0", "0.0.0.0", "::", "::2", "1::1",
                             "::ffff:127.0.0.1", "fe80::1%1"})
        CHECK_FALSE(ip_address::parse(text).is_loopback());

    for (const char* text : {"0.0.0.0", "::", "0:0:0:0:0:0:0:0"})
        CHECK(ip_address::parse(text).is_unspecified());
    for (const char* text : {"0.0.0.1", "128.0.0.0", "::1", "1::", "::ffff:0.0.0.0"})
        CHECK_FALSE(ip_address::parse(text).is_unspecified());
    CHECK(ip_address{}.is_unspecified());
}

TEST_CASE("equality compares family, bytes and scope", "[address]") {
    CHECK(ip_address::parse("::1") == ip_address::parse("0:0:0:0:0:0:0:1"));
    CHECK(ip_address::parse("::ffff:1.2.3.4") == ip_address::parse("::ffff:102:304"));
    CHECK(ip_address::parse("fe80::1%1") != ip_address::parse("fe80::1"));
    CHECK(ip_address::parse("fe80::1%1") != ip_address::parse("fe80::1%2"));
    // Same bytes, different family.
    CHECK(ip_address::parse("0.0.0.0") != ip_address::parse("::"));
    // An IPv4 address is not its IPv4-mapped IPv6 form.
    CHECK(ip_address::parse("1.2.3.4") != ip_address::parse("::ffff:1.2.3.4"));
}

TEST_CASE("ordering puts IPv4 first, then numeric order, then scope", "[address]") {
    const std::vector<std::string> ordered = {
        "0.0.0.0",         "0.0.0.1",   "9.255.255.255", "10.0.0.0",
        "10.0.0.2",        "10.0.0.10", "10.0.1.0",      "192.0.2.1",
        "255.255.255.255", "::",        "::1",           "::2",
        "::ffff:0.0.0.0",  "1::",       "2001:db8::",    "fe80::1",
        "fe80::1%1",       "fe80::1%2", "fe80::2",       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"};
    std::vector<ip_address> addresses;
    for (const auto& text : ordered)
        addresses.push_back(ip_address::parse(text));
    for (std::size_t i = 0; i + 1 < addresses.size(); ++i) {
        INFO(ordered[i] << " < " << ordered[i + 1]);
        CHECK(addresses[i] < addresses[i + 1]);
        CHECK((addresses[i] <=> addresses[i + 1]) == std::strong_ordering::less);
        CHECK((addresses[i + 1] <=> addresses[i]) == std::strong_ordering::greater);
    }
    std::vector<ip_address> shuffled(addresses.rbegin(), addresses.rend());
    std::sort(shuffled.begin(), shuffled.end());
    CHECK(shuffled == addresses);
    CHECK((ip_address::parse("::1") <=> ip_address::parse("0::1")) == std::strong_ordering::equal);
}

TEST_CASE("hash agrees with equality and separates near misses", "[address][hash]") {
    const std::hash<ip_address> h;
    CHECK(h(ip_address::parse("::1")) == h(ip_address::parse("0:0:0:0:0:0:0:1")));
    CHECK(h(ip_address::parse("::1")) == ip_address::parse("::1").hash());
    CHECK(h(ip_address::parse("0.0.0.0")) != h(ip_address::parse("::")));
    CHECK(h(ip_address::parse("fe80::1")) != h(ip_address::parse("fe80::1%1")));
    CHECK(h(ip_address::parse("1.2.3.4")) != h(ip_address::parse("::ffff:1.2.3.4")));
    CHECK(h(ip_address{}) != 0);
}

TEST_CASE("hash mixes sequential addresses into all bits", "[address][hash]") {
    // 100,000 consecutive addresses: an identity-like hash would leave the
    // top 16 bits constant. A random function fills about 51,300 of the 65,536
    // possible values of any 16 bits; demand most of that, in both halves.
    constexpr std::uint32_t count = 100000;
    for (const bool v6 : {false, true}) {
        INFO((v6 ? "IPv6" : "IPv4"));
        std::set<std::uint32_t> low;
        std::set<std::uint32_t> high;
        for (std::uint32_t i = 0; i < count; ++i) {
            ip_address a = ip_address::from_v4(0x0a000000 + i);
            if (v6) {
                std::array<std::uint8_t, 16> bytes{0x20, 0x01, 0x0d, 0xb8};
                bytes[13] = static_cast<std::uint8_t>(i >> 16);
                bytes[14] = static_cast<std::uint8_t>(i >> 8);
                bytes[15] = static_cast<std::uint8_t>(i);
                a = ip_address::from_v6_bytes(bytes);
            }
            const std::uint64_t hash = a.hash();
            low.insert(static_cast<std::uint32_t>(hash & 0xffff));
            high.insert(static_cast<std::uint32_t>(hash >> (8 * sizeof(std::size_t) - 16)));
        }
        CHECK(low.size() > 48000);
        CHECK(high.size() > 48000);
    }
}

TEST_CASE("std::hash works in an unordered_set of random addresses", "[address][hash]") {
    std::mt19937_64 rng(icmpengine::testing::test_seed("ip_address_hash"));
    std::unordered_set<ip_address> set;
    std::set<ip_address> reference;
    std::unordered_set<std::size_t> hashes;
    for (int i = 0; i < 100000; ++i) {
        ip_address a;
        switch (rng() % 4) {
        case 0:
            a = ip_address::from_v4(static_cast<std::uint32_t>(rng()));
            break;
        case 1:
            // A small range, so that some addresses repeat.
            a = ip_address::from_v4(0xc0000200 + static_cast<std::uint32_t>(rng() % 1024));
            break;
        default: {
            std::array<std::uint8_t, 16> bytes{};
            const std::uint64_t low = rng();
            const std::uint64_t high = rng() % 2 == 0 ? 0xfe80000000000000 : rng();
            for (int b = 0; b < 8; ++b) {
                bytes[b] = static_cast<std::uint8_t>(high >> (56 - 8 * b));
                bytes[8 + b] = static_cast<std::uint8_t>(low >> (56 - 8 * b));
            }
            a = ip_address::from_v6_bytes(bytes, static_cast<std::uint32_t>(rng() % 3));
            break;
        }
        }
        set.insert(a);
        reference.insert(a);
        hashes.insert(std::hash<ip_address>{}(a));
        CHECK(set.count(a) == 1);
    }
    CHECK(set.size() == reference.size());
    for (const ip_address& a : reference)
        REQUIRE(set.count(a) == 1);
    // With a 64-bit hash, a collision among ~100,000 distinct addresses has
    // a probability near 3e-10.
    if constexpr (sizeof(std::size_t) == 8)
        CHECK(hashes.size() == reference.size());
}

TEST_CASE("ip_address works in constant expressions", "[address]") {
    constexpr ip_address loopback = ip_address::from_v4(0x7f000001);
    STATIC_REQUIRE(loopback.v4_value() == 0x7f000001);
    STATIC_REQUIRE(loopback.is_v4());
    STATIC_REQUIRE(!loopback.is_v6());
    STATIC_REQUIRE(loopback.family() == ip_family::v4);
    STATIC_REQUIRE(loopback.bytes()[0] == 127);
    STATIC_REQUIRE(loopback.bytes()[3] == 1);
    STATIC_REQUIRE(loopback.scope_id() == 0);
    STATIC_REQUIRE(ip_address{} == ip_address::from_v4(0));
    STATIC_REQUIRE(ip_address::from_v4(1) < ip_address::from_v4(2));
    STATIC_REQUIRE(ip_address::from_v4(0x09ffffff) < ip_address::from_v4(0x0a000000));
    STATIC_REQUIRE((loopback <=> loopback) == std::strong_ordering::equal);
    STATIC_REQUIRE(noexcept(ip_address::try_parse("")));
    // As documented: small enough to pass and store by value.
    STATIC_REQUIRE(sizeof(ip_address) == 24);

    constexpr std::array<ip_address, 3> table{ip_address::from_v4(1), ip_address::from_v4(2),
                                              ip_address::from_v4(3)};
    STATIC_REQUIRE(table[2].v4_value() == 3);
}
