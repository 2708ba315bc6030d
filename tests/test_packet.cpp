// SPDX-License-Identifier: MIT
// Tests of detail::packet: echo request building, RFC 1071 checksums, token
// tags, and parsing of replies, ICMP errors and raw IPv4 headers, including
// every truncation and a randomised garbage/mutation run (run it under
// -Db_sanitize=address,undefined: the parsers must never read out of bounds).
#include <catch2/catch.hpp>

#include "packet.hpp"
#include "seed.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

namespace {

using namespace icmpengine;
using namespace icmpengine::detail;

using byte_vector = std::vector<std::byte>;

std::uint8_t u8(std::byte b) {
    return std::to_integer<std::uint8_t>(b);
}

byte_vector from_hex_bytes(std::initializer_list<int> values) {
    byte_vector v;
    for (int x : values)
        v.push_back(static_cast<std::byte>(x));
    return v;
}

void put16(byte_vector& v, std::size_t at, std::uint16_t x) {
    v.at(at) = static_cast<std::byte>(x >> 8);
    v.at(at + 1) = static_cast<std::byte>(x);
}

std::uint16_t get16(const byte_vector& v, std::size_t at) {
    return static_cast<std::uint16_t>(u8(v.at(at)) << 8 | u8(v.at(at + 1)));
}

// A straightforward RFC 1071 reference: one's complement addition with the
// end-around carry applied after every word.
std::uint16_t reference_checksum(const byte_vector& v) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < v.size(); i += 2) {
        std::uint32_t word = std::uint32_t{u8(v[i])} << 8;
        if (i + 1 < v.size())
            word |= u8(v[i + 1]);
        sum += word;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum);
}

constexpr echo_token sample_token{
    .slot = 0x01020304, .generation = 0xa0b0c0d0, .tag = 0x1122334455667788ULL};

// An echo request as build_echo_request writes it.
byte_vector make_request(ip_family family, std::uint16_t id, std::uint16_t seq,
                         std::uint32_t payload_size, const echo_token* token,
                         bool checksum = false) {
    byte_vector v(icmp_header_size + payload_size);
    REQUIRE(build_echo_request(v, family, id, seq, payload_size, token, checksum) == v.size());
    return v;
}

// The echo reply a peer sends back: the request with the reply type (and for
// ICMPv4 a fresh checksum, as a raw socket would see it).
byte_vector make_reply(ip_family family, std::uint16_t id, std::uint16_t seq,
                       std::uint32_t payload_size, const echo_token* token) {
    byte_vector v = make_request(family, id, seq, payload_size, token);
    v[0] = static_cast<std::byte>(family == ip_family::v4 ? icmp4_echo_reply : icmp6_echo_reply);
    if (family == ip_family::v4)
        put16(v, 2, internet_checksum(v));
    return v;
}

constexpr std::uint32_t v4_target = 0xc0000201; // 192.0.2.1 (RFC 5737)
const std::array<std::uint8_t, 16> v6_target_bytes{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                                   0,    0,    0,    0,    0, 0, 0, 0x42};

// An ICMPv4 error quoting `request` behind a 20-byte IPv4 header, of which
// only the ICMP header and `quoted_payload` payload bytes are kept.
byte_vector make_error_v4(std::uint8_t type, std::uint8_t code, const byte_vector& request,
                          std::size_t quoted_payload) {
    byte_vector v(icmp_header_size + ipv4_min_header_size);
    v[0] = static_cast<std::byte>(type);
    v[1] = static_cast<std::byte>(code);
    const std::size_t ip = icmp_header_size;
    v[ip + 0] = std::byte{0x45};
    put16(v, ip + 2, static_cast<std::uint16_t>(ipv4_min_header_size + request.size()));
    v[ip + 8] = std::byte{1};  // TTL
    v[ip + 9] = std::byte{1};  // ICMP
    put16(v, ip + 12, 0xc633); // 198.51.100.7
    put16(v, ip + 14, 0x6407);
    put16(v, ip + 16, static_cast<std::uint16_t>(v4_target >> 16));
    put16(v, ip + 18, static_cast<std::uint16_t>(v4_target));
    const std::size_t keep = std::min(request.size(), icmp_header_size + quoted_payload);
    v.insert(v.end(), request.begin(), request.begin() + static_cast<std::ptrdiff_t>(keep));
    put16(v, 2, internet_checksum(v));
    return v;
}

// An ICMPv6 error quoting `request` behind a 40-byte IPv6 header.
byte_vector make_error_v6(std::uint8_t type, std::uint8_t code, const byte_vector& request,
                          std::size_t quoted_payload) {
    byte_vector v(icmp_header_size + ipv6_header_size);
    v[0] = static_cast<std::byte>(type);
    v[1] = static_cast<std::byte>(code);
    const std::size_t ip = icmp_header_size;
    v[ip + 0] = std::byte{0x60};
    put16(v, ip + 4, static_cast<std::uint16_t>(request.size()));
    v[ip + 6] = std::byte{58}; // ICMPv6
    v[ip + 7] = std::byte{1};  // hop limit
    v[ip + 8] = std::byte{0xfe};
    v[ip + 9] = std::byte{0x80};
    v[ip + 23] = std::byte{0x01};
    for (std::size_t i = 0; i < 16; ++i)
        v[ip + 24 + i] = static_cast<std::byte>(v6_target_bytes[i]);
    const std::size_t keep = std::min(request.size(), icmp_header_size + quoted_payload);
    v.insert(v.end(), request.begin(), request.begin() + static_cast<std::ptrdiff_t>(keep));
    return v;
}

byte_vector make_error(ip_family family, std::uint8_t type, std::uint8_t code,
                       const byte_vector& request, std::size_t quoted_payload) {
    return family == ip_family::v4 ? make_error_v4(type, code, request, quoted_payload)
                                   : make_error_v6(type, code, request, quoted_payload);
}

std::size_t quote_header_size(ip_family family) {
    return icmp_header_size + (family == ip_family::v4 ? ipv4_min_header_size : ipv6_header_size) +
           icmp_header_size;
}

ip_address target(ip_family family) {
    return family == ip_family::v4 ? ip_address::from_v4(v4_target)
                                   : ip_address::from_v6_bytes(v6_target_bytes);
}

// A copy of `data` in a heap block of exactly its size, so that ASan reports
// any read past the end (a vector may have spare capacity behind it).
class exact_buffer {
  public:
    explicit exact_buffer(std::span<const std::byte> data)
        : m_bytes(new std::byte[data.size()]), m_size(data.size()) {
        if (m_size != 0)
            std::memcpy(m_bytes.get(), data.data(), m_size);
    }
    std::span<const std::byte> span() const { return {m_bytes.get(), m_size}; }

  private:
    std::unique_ptr<std::byte[]> m_bytes;
    std::size_t m_size;
};

bool within(std::span<const std::byte> inner, std::span<const std::byte> outer) {
    if (inner.empty())
        return true;
    const auto* b = outer.data();
    return inner.data() >= b && inner.data() + inner.size() <= b + outer.size();
}

} // namespace

// ---------------------------------------------------------------- checksum

TEST_CASE("internet_checksum matches RFC 1071 and hand-computed vectors", "[packet][checksum]") {
    SECTION("RFC 1071 section 3 example: sum ddf2, checksum 220d") {
        const auto v = from_hex_bytes({0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7});
        CHECK(internet_checksum(v) == 0x220d);
    }
    SECTION("a well-known IPv4 header checksums to b861, and verifies to 0") {
        auto v = from_hex_bytes({0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                                 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7});
        CHECK(internet_checksum(v) == 0xb861);
        put16(v, 10, 0xb861);
        CHECK(internet_checksum(v) == 0);
    }
    SECTION("an echo request computed by hand") {
        // 0800 + 0000 + 1234 + 0001 + 0001 + 0203 = 1c39; ~1c39 = e3c6.
        const auto v = make_request(ip_family::v4, 0x1234, 0x0001, 4, nullptr, true);
        CHECK(get16(v, 2) == 0xe3c6);
        CHECK(internet_checksum(v) == 0);
    }
    SECTION("odd length pads the last byte with a zero octet") {
        CHECK(internet_checksum(from_hex_bytes({0x12})) == static_cast<std::uint16_t>(~0x1200));
        CHECK(internet_checksum(from_hex_bytes({0x12, 0x34, 0x56})) ==
              static_cast<std::uint16_t>(~(0x1234 + 0x5600)));
    }
    SECTION("empty and carry-folding edge cases") {
        CHECK(internet_checksum({}) == 0xffff);
        CHECK(internet_checksum(from_hex_bytes({0xff, 0xff, 0xff, 0xff})) == 0x0000);
        CHECK(internet_checksum(from_hex_bytes({0xff, 0xff, 0x00, 0x01})) == 0xfffe);
        byte_vector big(65536, std::byte{0xff});
        CHECK(internet_checksum(big) == 0x0000);
        big.back() = std::byte{0xfe};
        CHECK(internet_checksum(big) == reference_checksum(big));
    }
    SECTION("agrees with a reference over random data, lengths and alignments") {
        std::mt19937_64 rng(12345);
        for (int round = 0; round < 2000; ++round) {
            byte_vector v(rng() % 300);
            for (auto& b : v)
                b = static_cast<std::byte>(rng());
            REQUIRE(internet_checksum(v) == reference_checksum(v));
            if (v.size() > 1) {
                const byte_vector tail(v.begin() + 1, v.end());
                REQUIRE(internet_checksum(std::span(v).subspan(1)) == reference_checksum(tail));
            }
        }
    }
}

// ---------------------------------------------------------------- token tag

TEST_CASE("token_tag is deterministic and depends on every input", "[packet][token]") {
    const token_key key{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
    CHECK(token_tag(key, 1, 2, 3) == token_tag(key, 1, 2, 3));
    CHECK(token_tag(key, 1, 2, 3) != token_tag(key, 2, 2, 3));
    CHECK(token_tag(key, 1, 2, 3) != token_tag(key, 1, 3, 3));
    CHECK(token_tag(key, 1, 2, 3) != token_tag(key, 1, 2, 4));
    CHECK(token_tag(key, 1, 2, 3) != token_tag({key.k0 ^ 1, key.k1}, 1, 2, 3));
    CHECK(token_tag(key, 1, 2, 3) != token_tag({key.k0, key.k1 ^ 1}, 1, 2, 3));
    // Swapping slot and generation is a different token.
    CHECK(token_tag(key, 7, 9, 0) != token_tag(key, 9, 7, 0));
    // No trivial fixed point for an all-zero key and input.
    CHECK(token_tag({}, 0, 0, 0) != 0);

    SECTION("all 65536 sequences of one slot use give distinct tags") {
        std::vector<std::uint64_t> tags;
        for (std::uint32_t s = 0; s <= 0xffff; ++s)
            tags.push_back(token_tag(key, 42, 7, static_cast<std::uint16_t>(s)));
        std::sort(tags.begin(), tags.end());
        CHECK(std::adjacent_find(tags.begin(), tags.end()) == tags.end());
    }
}

TEST_CASE("token_tag has no collisions and avalanches over random samples", "[packet][token]") {
    // Static: one seed (printed once) for every section's run of the case.
    static const std::uint64_t seed = icmpengine::testing::test_seed("token_tag");
    std::mt19937_64 rng(seed);

    SECTION("no collisions among 200k random (key, slot, generation, sequence)") {
        std::vector<std::uint64_t> tags;
        const token_key key{rng(), rng()};
        for (int i = 0; i < 100000; ++i)
            tags.push_back(token_tag(key, static_cast<std::uint32_t>(rng()),
                                     static_cast<std::uint32_t>(rng()),
                                     static_cast<std::uint16_t>(rng())));
        // And the same (slot, generation, sequence) under many keys.
        for (int i = 0; i < 100000; ++i)
            tags.push_back(token_tag({rng(), rng()}, 1, 1, 1));
        std::sort(tags.begin(), tags.end());
        CHECK(std::adjacent_find(tags.begin(), tags.end()) == tags.end());
    }

    SECTION("flipping any one input bit flips each output bit with p ~ 1/2") {
        // 144 input bits: k0 (64), k1 (64), slot (32), generation (32), sequence (16).
        constexpr int input_bits = 64 + 64 + 32 + 32 + 16;
        constexpr int samples = 1500;
        double total_flips = 0;
        double worst = 0;
        for (int bit = 0; bit < input_bits; ++bit) {
            std::array<int, 64> flips{};
            for (int s = 0; s < samples; ++s) {
                token_key k{rng(), rng()};
                auto slot = static_cast<std::uint32_t>(rng());
                auto gen = static_cast<std::uint32_t>(rng());
                auto seq = static_cast<std::uint16_t>(rng());
                const std::uint64_t before = token_tag(k, slot, gen, seq);
                if (bit < 64)
                    k.k0 ^= 1ULL << bit;
                else if (bit < 128)
                    k.k1 ^= 1ULL << (bit - 64);
                else if (bit < 160)
                    slot ^= 1U << (bit - 128);
                else if (bit < 192)
                    gen ^= 1U << (bit - 160);
                else
                    seq = static_cast<std::uint16_t>(seq ^ (1U << (bit - 192)));
                const std::uint64_t diff = before ^ token_tag(k, slot, gen, seq);
                REQUIRE(diff != 0);
                total_flips += std::popcount(diff);
                for (int o = 0; o < 64; ++o)
                    flips[static_cast<std::size_t>(o)] += static_cast<int>((diff >> o) & 1);
            }
            for (int f : flips)
                worst = std::max(worst, std::abs(static_cast<double>(f) / samples - 0.5));
        }
        const double mean = total_flips / (double{input_bits} * samples);
        INFO("mean output bits flipped: " << mean << ", worst per-bit bias: " << worst);
        // Std dev of a cell is sqrt(.25/1500) ~ 0.013: 0.08 is > 6 sigma.
        CHECK(mean > 31.7);
        CHECK(mean < 32.3);
        CHECK(worst < 0.08);
    }
}

// ---------------------------------------------------------------- building

TEST_CASE("build_echo_request writes the RFC 792 / RFC 4443 layout", "[packet][build]") {
    SECTION("IPv4 with token: header, token big-endian, fill pattern after it") {
        const auto v = make_request(ip_family::v4, 0xbeef, 0x0102, 20, &sample_token);
        const auto expected = from_hex_bytes({
            0x08, 0x00, 0x00, 0x00, 0xbe, 0xef, 0x01, 0x02, // header
            0x01, 0x02, 0x03, 0x04, 0xa0, 0xb0, 0xc0, 0xd0, // slot, gen
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // tag
            0x10, 0x11, 0x12, 0x13,                         // fill 16..19
        });
        CHECK(v == expected);
        REQUIRE(read_token(std::span(v).subspan(8)) == sample_token);
    }
    SECTION("IPv6 uses type 128 and leaves the checksum to the kernel") {
        const auto v = make_request(ip_family::v6, 1, 2, 0, nullptr, false);
        CHECK(v == from_hex_bytes({0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02}));
    }
    SECTION("checksum is zero unless asked, valid when asked") {
        const auto plain = make_request(ip_family::v4, 7, 9, 56, &sample_token, false);
        CHECK(get16(plain, 2) == 0);
        const auto summed = make_request(ip_family::v4, 7, 9, 56, &sample_token, true);
        CHECK(get16(summed, 2) != 0);
        CHECK(internet_checksum(summed) == 0);
        auto unsummed = summed;
        put16(unsummed, 2, 0);
        CHECK(unsummed == plain);
    }
    SECTION("no token: the fill pattern starts at payload byte 0") {
        const auto v = make_request(ip_family::v4, 1, 1, 300, nullptr);
        for (std::size_t i = 0; i < 300; ++i)
            REQUIRE(u8(v[8 + i]) == static_cast<std::uint8_t>(i));
    }
    SECTION("a payload shorter than the token gets no token, only the fill") {
        const auto v = make_request(ip_family::v6, 1, 1, token_size - 1, &sample_token);
        for (std::size_t i = 0; i < token_size - 1; ++i)
            REQUIRE(u8(v[8 + i]) == static_cast<std::uint8_t>(i));
        CHECK_FALSE(read_token(std::span(v).subspan(8)));
    }
    SECTION("an output buffer one byte short is refused and left untouched") {
        for (std::uint32_t size : {0U, 1U, 16U, 56U}) {
            for (std::size_t out = 0; out < icmp_header_size + size; ++out) {
                byte_vector v(out, std::byte{0xaa});
                REQUIRE(build_echo_request(v, ip_family::v4, 1, 1, size, &sample_token, true) == 0);
                REQUIRE(std::all_of(v.begin(), v.end(),
                                    [](std::byte b) { return b == std::byte{0xaa}; }));
            }
        }
    }
    SECTION("a larger buffer is only written up to the packet size") {
        byte_vector v(100, std::byte{0xaa});
        REQUIRE(build_echo_request(v, ip_family::v4, 1, 1, 10, nullptr, true) == 18);
        CHECK(
            std::all_of(v.begin() + 18, v.end(), [](std::byte b) { return b == std::byte{0xaa}; }));
        CHECK(internet_checksum(std::span(v).first(18)) == 0);
    }
}

// ---------------------------------------------------------------- round trips

TEST_CASE("echo replies round-trip for IPv4 and IPv6", "[packet][parse]") {
    const auto family = GENERATE(ip_family::v4, ip_family::v6);
    const auto size = GENERATE(0U, 1U, 15U, 16U, 17U, 56U, 1472U, max_payload_size);
    const bool with_token = GENERATE(true, false);
    const echo_token* token = with_token ? &sample_token : nullptr;
    const bool token_sent = with_token && size >= token_size;
    CAPTURE(family == ip_family::v4, size, with_token);

    const auto reply = make_reply(family, 0x4321, 0x8765, size, token);
    icmp_message m;
    REQUIRE(parse_icmp(reply, family, family == ip_family::v4, m) == parse_error::none);
    CHECK(m.kind == icmp_kind::echo_reply);
    CHECK(m.type == (family == ip_family::v4 ? icmp4_echo_reply : icmp6_echo_reply));
    CHECK(m.code == 0);
    CHECK(m.identifier == 0x4321);
    CHECK(m.sequence == 0x8765);
    CHECK_FALSE(m.quoted_destination);
    REQUIRE(m.payload.size() == size);
    CHECK(m.payload.data() == reply.data() + 8);
    CHECK(payload_matches(m.payload, size, size, token));
    if (token_sent)
        CHECK(read_token(m.payload) == sample_token);

    // The request itself (as a raw socket sees our own packets on loopback).
    const auto request = make_request(family, 0x4321, 0x8765, size, token, true);
    REQUIRE(parse_icmp(request, family, true, m) == parse_error::none);
    CHECK(m.kind == icmp_kind::echo_request);
    CHECK(payload_matches(m.payload, size, size, token));

    // Any single changed payload byte breaks the match. Every byte for
    // normal sizes; for the largest, the token, both ends and a sample.
    std::vector<std::size_t> positions;
    if (size <= 1472) {
        for (std::size_t i = 0; i < size; ++i)
            positions.push_back(i);
    } else {
        for (std::size_t i = 0; i < 64; ++i) {
            positions.push_back(i);
            positions.push_back(size - 1 - i);
        }
        for (std::size_t i = 64; i < size - 64; i += 97)
            positions.push_back(i);
    }
    auto mutated = reply;
    for (std::size_t p : positions) {
        mutated[8 + p] ^= std::byte{0x01};
        REQUIRE(parse_icmp(mutated, family, false, m) == parse_error::none);
        REQUIRE_FALSE(payload_matches(m.payload, size, size, token));
        if (family == ip_family::v4)
            REQUIRE(parse_icmp(mutated, family, true, m) == parse_error::bad_checksum);
        mutated[8 + p] ^= std::byte{0x01};
    }
    REQUIRE(mutated == reply);
}

TEST_CASE("payload_matches contract", "[packet][match]") {
    const auto reply = make_reply(ip_family::v4, 1, 2, 100, &sample_token);
    const auto payload = std::span(reply).subspan(8);

    SECTION("full_size must equal sent_size") {
        CHECK(payload_matches(payload, 100, 100, &sample_token));
        CHECK_FALSE(payload_matches(payload, 101, 100, &sample_token));
        CHECK_FALSE(payload_matches(payload, 100, 101, &sample_token));
        CHECK_FALSE(payload_matches(payload.first(99), 99, 100, &sample_token));
    }
    SECTION("a truncated receive matches as long as the whole token is there") {
        for (std::size_t n = token_size; n <= 100; ++n)
            REQUIRE(payload_matches(payload.first(n), 100, 100, &sample_token));
        for (std::size_t n = 0; n < token_size; ++n)
            REQUIRE_FALSE(payload_matches(payload.first(n), 100, 100, &sample_token));
    }
    SECTION("more bytes than were sent never match") {
        auto longer = reply;
        longer.push_back(std::byte{100});
        CHECK_FALSE(payload_matches(std::span(longer).subspan(8), 100, 100, &sample_token));
    }
    SECTION("every field of the token is compared") {
        for (auto other :
             {echo_token{sample_token.slot ^ 1, sample_token.generation, sample_token.tag},
              echo_token{sample_token.slot, sample_token.generation ^ 1, sample_token.tag},
              echo_token{sample_token.slot, sample_token.generation,
                         sample_token.tag ^ (1ULL << 63)}}) {
            CHECK_FALSE(payload_matches(payload, 100, 100, &other));
        }
        // A token payload is not a tokenless one, and vice versa.
        CHECK_FALSE(payload_matches(payload, 100, 100, nullptr));
        const auto plain = make_reply(ip_family::v4, 1, 2, 100, nullptr);
        CHECK(payload_matches(std::span(plain).subspan(8), 100, 100, nullptr));
        CHECK_FALSE(payload_matches(std::span(plain).subspan(8), 100, 100, &sample_token));
    }
    SECTION("short payloads carry no token even when one is given") {
        const auto small = make_reply(ip_family::v6, 1, 2, 10, &sample_token);
        CHECK(payload_matches(std::span(small).subspan(8), 10, 10, &sample_token));
        CHECK(payload_matches(std::span(small).subspan(8), 10, 10, nullptr));
        CHECK(payload_matches({}, 0, 0, &sample_token));
    }
}

TEST_CASE("random fill: the token stays, the rest is the seed's keystream",
          "[packet][match][random]") {
    const std::uint64_t seed = sample_token.tag;
    const std::uint64_t other_seed = seed ^ 1;
    const std::uint32_t size = GENERATE(0u, 5u, 16u, 17u, 100u, 1000u);
    std::vector<std::byte> request(icmp_header_size + size);
    REQUIRE(build_echo_request(request, ip_family::v6, 0, 2, size, &sample_token, false, &seed) ==
            request.size());
    const auto payload = std::span<const std::byte>(request).subspan(icmp_header_size);
    if (size >= token_size)
        CHECK(read_token(payload) == sample_token);
    CHECK(payload_matches(payload, size, size, &sample_token, &seed));
    const std::size_t first = size >= token_size ? token_size : 0;
    if (size > first) {
        CHECK_FALSE(payload_matches(payload, size, size, &sample_token, &other_seed));
        CHECK_FALSE(payload_matches(payload, size, size, &sample_token, nullptr));
        // Truncated receives still match as far as they go.
        CHECK(payload_matches(payload.first(size - 1), size, size, &sample_token, &seed));
        // Not the fixed pattern: at most a few bytes agree by chance.
        std::size_t same = 0;
        for (std::size_t i = first; i < size; ++i)
            same += payload[i] == static_cast<std::byte>(i) ? 1 : 0;
        CHECK(same <= 1 + (size - first) / 16);
    }
    // Another seed gives other bytes.
    std::vector<std::byte> again(request.size());
    build_echo_request(again, ip_family::v6, 0, 2, size, &sample_token, false, &other_seed);
    CHECK((size <= first) == (again == request));
}

// ---------------------------------------------------------------- truncation

TEST_CASE("replies truncated at every length", "[packet][parse][truncated]") {
    const auto family = GENERATE(ip_family::v4, ip_family::v6);
    const auto reply = make_reply(family, 5, 6, 64, &sample_token);
    for (std::size_t n = 0; n <= reply.size(); ++n) {
        CAPTURE(n);
        const exact_buffer buf{std::span(reply).first(n)};
        icmp_message m;
        const auto e = parse_icmp(buf.span(), family, false, m);
        if (n < icmp_header_size) {
            REQUIRE(e == parse_error::truncated);
            continue;
        }
        // A short receive buffer cuts the payload, not the message: it
        // parses, and payload_matches decides on what arrived.
        REQUIRE(e == parse_error::none);
        REQUIRE(m.identifier == 5);
        REQUIRE(m.sequence == 6);
        REQUIRE(m.payload.size() == n - icmp_header_size);
        REQUIRE(payload_matches(m.payload, 64, 64, &sample_token) ==
                (m.payload.size() >= token_size));
        // Only the complete ICMPv4 message passes its checksum.
        if (family == ip_family::v4)
            REQUIRE((parse_icmp(buf.span(), family, true, m) == parse_error::none) ==
                    (n == reply.size()));
    }
}

TEST_CASE("errors truncated at every length", "[packet][parse][truncated]") {
    const auto family = GENERATE(ip_family::v4, ip_family::v6);
    const auto request = make_request(family, 5, 6, 64, &sample_token);
    const std::uint8_t type = family == ip_family::v4 ? icmp4_time_exceeded : icmp6_time_exceeded;
    const auto error = make_error(family, type, 0, request, 64);
    const std::size_t headers = quote_header_size(family);
    REQUIRE(error.size() == headers + 64);
    for (std::size_t n = 0; n <= error.size(); ++n) {
        CAPTURE(n);
        const exact_buffer buf{std::span(error).first(n)};
        icmp_message m;
        const auto e = parse_icmp(buf.span(), family, false, m);
        if (n < headers) {
            REQUIRE(e == parse_error::truncated);
            if (n >= icmp_header_size)
                REQUIRE(m.kind == icmp_kind::time_exceeded);
            REQUIRE_FALSE(m.quoted_destination);
            continue;
        }
        REQUIRE(e == parse_error::none);
        REQUIRE(m.kind == icmp_kind::time_exceeded);
        REQUIRE(m.identifier == 5);
        REQUIRE(m.sequence == 6);
        REQUIRE(m.quoted_destination == target(family));
        REQUIRE(m.payload.size() == n - headers);
        REQUIRE(within(m.payload, buf.span()));
    }
}

// ---------------------------------------------------------------- type / code

TEST_CASE("types outside the engine's interest are `other`", "[packet][parse]") {
    struct sample {
        ip_family family;
        std::uint8_t type;
    };
    // v4: redirect, timestamp, router advert, and ICMPv6 echo numbers; v6:
    // router/neighbour discovery, MLD, and the ICMPv4 echo numbers.
    for (auto [family, type] :
         {sample{ip_family::v4, 5}, sample{ip_family::v4, 13}, sample{ip_family::v4, 9},
          sample{ip_family::v4, 128}, sample{ip_family::v4, 129}, sample{ip_family::v6, 133},
          sample{ip_family::v6, 135}, sample{ip_family::v6, 130}, sample{ip_family::v6, 0},
          sample{ip_family::v6, 8}}) {
        CAPTURE(family == ip_family::v4, type);
        auto v = make_reply(family, 1, 2, 20, nullptr);
        v[0] = static_cast<std::byte>(type);
        v[1] = std::byte{7}; // the code of an unknown type is not judged
        icmp_message m;
        REQUIRE(parse_icmp(v, family, false, m) == parse_error::none);
        CHECK(m.kind == icmp_kind::other);
        CHECK(m.type == type);
        CHECK(m.code == 7);
        CHECK(m.payload.empty());
        CHECK_FALSE(m.quoted_destination);
    }
}

TEST_CASE("echo messages with a nonzero code are bad_code", "[packet][parse]") {
    const auto family = GENERATE(ip_family::v4, ip_family::v6);
    const bool reply = GENERATE(true, false);
    auto v = reply ? make_reply(family, 1, 2, 20, &sample_token)
                   : make_request(family, 1, 2, 20, &sample_token);
    v[1] = std::byte{1};
    icmp_message m;
    CHECK(parse_icmp(v, family, false, m) == parse_error::bad_code);
    CHECK(m.kind == (reply ? icmp_kind::echo_reply : icmp_kind::echo_request));
    CHECK(m.code == 1);
    CHECK(m.payload.empty());
}

TEST_CASE("a previous result never leaks into a failed parse", "[packet][parse]") {
    const auto good = make_reply(ip_family::v4, 1, 2, 20, &sample_token);
    icmp_message m;
    REQUIRE(parse_icmp(good, ip_family::v4, false, m) == parse_error::none);
    REQUIRE(m.payload.size() == 20);
    const auto bad = from_hex_bytes({0x00, 0x00, 0x00});
    CHECK(parse_icmp(bad, ip_family::v4, false, m) == parse_error::truncated);
    CHECK(m.payload.empty());
    CHECK(m.identifier == 0);
    CHECK(m.kind == icmp_kind::other);
}

TEST_CASE("ICMPv4 checksum is verified only when asked", "[packet][parse][checksum]") {
    auto v = make_reply(ip_family::v4, 1, 2, 33, &sample_token); // odd length
    icmp_message m;
    REQUIRE(parse_icmp(v, ip_family::v4, true, m) == parse_error::none);
    put16(v, 2, static_cast<std::uint16_t>(get16(v, 2) + 1));
    CHECK(parse_icmp(v, ip_family::v4, true, m) == parse_error::bad_checksum);
    CHECK(parse_icmp(v, ip_family::v4, false, m) == parse_error::none);
    // ICMPv6 checksums include a pseudo-header: never checked here.
    auto v6 = make_reply(ip_family::v6, 1, 2, 33, &sample_token);
    put16(v6, 2, 0x1234);
    CHECK(parse_icmp(v6, ip_family::v6, true, m) == parse_error::none);
}

// ---------------------------------------------------------------- errors

TEST_CASE("ICMP errors map to kinds and expose the quoted request", "[packet][parse][error]") {
    struct sample {
        ip_family family;
        std::uint8_t type;
        std::uint8_t code;
        icmp_kind kind;
    };
    const auto s =
        GENERATE(sample{ip_family::v4, icmp4_dest_unreachable, 1, icmp_kind::dest_unreachable},
                 sample{ip_family::v4, icmp4_dest_unreachable, 3, icmp_kind::dest_unreachable},
                 sample{ip_family::v4, icmp4_dest_unreachable, icmp4_frag_needed_code,
                        icmp_kind::packet_too_big},
                 sample{ip_family::v4, icmp4_time_exceeded, 0, icmp_kind::time_exceeded},
                 sample{ip_family::v4, icmp4_parameter_problem, 0, icmp_kind::parameter_problem},
                 sample{ip_family::v6, icmp6_dest_unreachable, 4, icmp_kind::dest_unreachable},
                 sample{ip_family::v6, icmp6_packet_too_big, 0, icmp_kind::packet_too_big},
                 sample{ip_family::v6, icmp6_time_exceeded, 0, icmp_kind::time_exceeded},
                 sample{ip_family::v6, icmp6_parameter_problem, 1, icmp_kind::parameter_problem});
    // Routers quote no payload, RFC 792's 64 bits, or everything.
    const std::size_t quoted = GENERATE(0U, 8U, 56U);
    CAPTURE(s.family == ip_family::v4, s.type, s.code, quoted);

    const auto request = make_request(s.family, 0xabcd, 0x0042, 56, &sample_token, true);
    auto error = make_error(s.family, s.type, s.code, request, quoted);
    if (s.family == ip_family::v4 && s.code == icmp4_frag_needed_code) {
        put16(error, 6, 1400); // next-hop MTU (RFC 1191) must not disturb parsing
        put16(error, 2, 0);
        put16(error, 2, internet_checksum(error));
    }
    icmp_message m;
    REQUIRE(parse_icmp(error, s.family, s.family == ip_family::v4, m) == parse_error::none);
    CHECK(m.kind == s.kind);
    CHECK(m.type == s.type);
    CHECK(m.code == s.code);
    CHECK(m.identifier == 0xabcd);
    CHECK(m.sequence == 0x0042);
    CHECK(m.quoted_destination == target(s.family));
    REQUIRE(m.payload.size() == quoted);
    CHECK(std::equal(m.payload.begin(), m.payload.end(), request.begin() + 8));
    if (quoted >= token_size) {
        CHECK(read_token(m.payload) == sample_token);
        CHECK(payload_matches(m.payload, 56, 56, &sample_token));
    } else {
        CHECK_FALSE(read_token(m.payload));
    }
}

TEST_CASE("errors quoting something other than our echo request", "[packet][parse][error]") {
    const auto family = GENERATE(ip_family::v4, ip_family::v6);
    const auto request = make_request(family, 1, 2, 24, &sample_token);
    const std::uint8_t type =
        family == ip_family::v4 ? icmp4_dest_unreachable : icmp6_dest_unreachable;
    const std::size_t ip_size = family == ip_family::v4 ? ipv4_min_header_size : ipv6_header_size;
    const std::size_t quoted_icmp = icmp_header_size + ip_size;
    icmp_message m;

    SECTION("a quoted echo reply, or the other family's echo request") {
        for (int quoted_type : {0, 129, family == ip_family::v4 ? 128 : 8, 13}) {
            auto v = make_error(family, type, 3, request, 24);
            v[quoted_icmp] = static_cast<std::byte>(quoted_type);
            CHECK(parse_icmp(v, family, false, m) == parse_error::quote_not_echo);
            CHECK(m.kind == icmp_kind::dest_unreachable);
        }
    }
    SECTION("a quoted echo request with a nonzero code is not ours") {
        auto v = make_error(family, type, 3, request, 24);
        v[quoted_icmp + 1] = std::byte{1};
        CHECK(parse_icmp(v, family, false, m) == parse_error::quote_not_echo);
    }
    SECTION("IPv6: a next header other than ICMPv6") {
        if (family == ip_family::v6) {
            for (int next : {17, 6, 0, 44}) { // UDP, TCP, hop-by-hop, fragment
                auto v = make_error(family, type, 3, request, 24);
                v[icmp_header_size + 6] = static_cast<std::byte>(next);
                CHECK(parse_icmp(v, family, false, m) == parse_error::quote_not_echo);
            }
        }
    }
    SECTION("IPv4: a non-first fragment carries no ICMP header") {
        if (family == ip_family::v4) {
            auto v = make_error(family, type, 3, request, 24);
            put16(v, icmp_header_size + 6, 0x0001); // fragment offset 8
            CHECK(parse_icmp(v, family, false, m) == parse_error::quote_not_echo);
            put16(v, icmp_header_size + 6, 0x4000); // DF alone is fine
            CHECK(parse_icmp(v, family, false, m) == parse_error::none);
        }
    }
}

TEST_CASE("errors with a bad quoted IP header", "[packet][parse][error]") {
    const auto request = make_request(ip_family::v4, 1, 2, 24, &sample_token);
    const auto good = make_error_v4(icmp4_time_exceeded, 0, request, 24);
    constexpr std::size_t ip = icmp_header_size;
    icmp_message m;

    SECTION("version") {
        for (int version : {0, 5, 6, 15}) {
            auto v = good;
            v[ip] = static_cast<std::byte>(version << 4 | 5);
            CHECK(parse_icmp(v, ip_family::v4, false, m) == parse_error::bad_ip_header);
        }
        auto v6 = make_error_v6(icmp6_time_exceeded, 0,
                                make_request(ip_family::v6, 1, 2, 24, &sample_token), 24);
        v6[ip] = std::byte{0x45};
        CHECK(parse_icmp(v6, ip_family::v6, false, m) == parse_error::bad_ip_header);
    }
    SECTION("IHL below 5") {
        for (int ihl = 0; ihl < 5; ++ihl) {
            auto v = good;
            v[ip] = static_cast<std::byte>(0x40 | ihl);
            CHECK(parse_icmp(v, ip_family::v4, false, m) == parse_error::bad_ip_header);
        }
    }
    SECTION("protocol other than ICMP") {
        for (int protocol : {0, 6, 17, 58}) {
            auto v = good;
            v[ip + 9] = static_cast<std::byte>(protocol);
            CHECK(parse_icmp(v, ip_family::v4, false, m) == parse_error::bad_ip_header);
        }
    }
    SECTION("IHL beyond the quoted bytes is truncated") {
        auto v = good;
        v.resize(icmp_header_size + 20 + 8);
        v[ip] = std::byte{0x4f}; // 60-byte header, 28 bytes quoted
        CHECK(parse_icmp(v, ip_family::v4, false, m) == parse_error::truncated);
    }
    SECTION("IP options are skipped to reach the quoted request") {
        for (int ihl = 6; ihl <= 15; ++ihl) {
            auto v = good;
            const std::size_t extra = static_cast<std::size_t>(ihl - 5) * 4;
            v[ip] = static_cast<std::byte>(0x40 | ihl);
            v.insert(v.begin() + static_cast<std::ptrdiff_t>(ip + 20), extra, std::byte{1});
            put16(v, ip + 2, static_cast<std::uint16_t>(get16(v, ip + 2) + extra));
            REQUIRE(parse_icmp(v, ip_family::v4, false, m) == parse_error::none);
            CHECK(m.identifier == 1);
            CHECK(m.sequence == 2);
            CHECK(m.payload.size() == 24);
            CHECK(m.quoted_destination == target(ip_family::v4));
        }
    }
    SECTION("a quoted total length larger than the quote is fine") {
        auto v = make_error_v4(icmp4_time_exceeded, 0, request, 0);
        CHECK(get16(v, ip + 2) == 20 + 8 + 24); // the original's length
        REQUIRE(parse_icmp(v, ip_family::v4, true, m) == parse_error::none);
        CHECK(m.payload.empty());
    }
    SECTION("a nonsensical quoted total length is ignored") {
        for (std::uint16_t length : {0, 1, 20, 27, 0xffff}) {
            auto v = good;
            put16(v, ip + 2, length);
            REQUIRE(parse_icmp(v, ip_family::v4, false, m) == parse_error::none);
            CHECK(m.payload.size() == 24);
        }
    }
}

TEST_CASE("padding and RFC 4884 extensions are not part of the quote", "[packet][parse][error]") {
    const auto family = GENERATE(ip_family::v4, ip_family::v6);
    const auto request = make_request(family, 1, 2, 56, &sample_token);
    const std::uint8_t type = family == ip_family::v4 ? icmp4_time_exceeded : icmp6_time_exceeded;
    auto v = make_error(family, type, 0, request, 56);
    const std::size_t quote_size = v.size() - icmp_header_size;
    // RFC 4884: zero-pad the original datagram to 128 octets (or more),
    // give its length, append an extension structure.
    const std::size_t padded = 128 + (family == ip_family::v4 ? 4 : 8);
    REQUIRE(quote_size < padded);
    v.resize(icmp_header_size + padded, std::byte{0});
    if (family == ip_family::v4)
        v[5] = static_cast<std::byte>(padded / 4);
    else
        v[4] = static_cast<std::byte>(padded / 8);
    for (int i = 0; i < 12; ++i) // extension header + an object, contents irrelevant
        v.push_back(static_cast<std::byte>(0x20 + i));

    icmp_message m;
    REQUIRE(parse_icmp(v, family, false, m) == parse_error::none);
    CHECK(m.payload.size() == 56);
    CHECK(payload_matches(m.payload, 56, 56, &sample_token));

    SECTION("the RFC 4884 length alone trims when the IP length is unusable") {
        if (family == ip_family::v4)
            put16(v, icmp_header_size + 2, 0); // quoted total length gone
        else
            put16(v, icmp_header_size + 4, 0); // quoted payload length gone
        REQUIRE(parse_icmp(v, family, false, m) == parse_error::none);
        CHECK(m.payload.size() == padded - (quote_size - 56));
        CHECK(std::equal(m.payload.begin(), m.payload.begin() + 56, request.begin() + 8));
    }
    SECTION("a length below 128 octets or beyond the message is not trusted") {
        for (int length : {1, 2, 7, 255}) {
            auto w = v;
            w[family == ip_family::v4 ? 5 : 4] = static_cast<std::byte>(length);
            REQUIRE(parse_icmp(w, family, false, m) == parse_error::none);
            CHECK(m.payload.size() == 56);
        }
    }
}

// ---------------------------------------------------------------- error queue

TEST_CASE("parse_quoted_echo reads our request from the error queue", "[packet][parse][error]") {
    const auto family = GENERATE(ip_family::v4, ip_family::v6);
    const auto request = make_request(family, 0x1111, 0x2222, 40, &sample_token);
    icmp_message m;
    REQUIRE(parse_quoted_echo(request, family, m) == parse_error::none);
    CHECK(m.kind == icmp_kind::echo_request);
    CHECK(m.identifier == 0x1111);
    CHECK(m.sequence == 0x2222);
    CHECK(m.payload.size() == 40);
    CHECK(payload_matches(m.payload, 40, 40, &sample_token));
    CHECK_FALSE(m.quoted_destination);

    SECTION("every truncation") {
        for (std::size_t n = 0; n <= request.size(); ++n) {
            const exact_buffer buf{std::span(request).first(n)};
            const auto e = parse_quoted_echo(buf.span(), family, m);
            REQUIRE(e == (n < icmp_header_size ? parse_error::truncated : parse_error::none));
            if (e == parse_error::none)
                REQUIRE(m.payload.size() == n - icmp_header_size);
        }
    }
    SECTION("replies and the other family's request are not our request") {
        const ip_family other = family == ip_family::v4 ? ip_family::v6 : ip_family::v4;
        CHECK(parse_quoted_echo(request, other, m) == parse_error::quote_not_echo);
        CHECK(parse_quoted_echo(make_reply(family, 1, 2, 40, nullptr), family, m) ==
              parse_error::quote_not_echo);
        CHECK(m.kind == icmp_kind::echo_reply);
        CHECK(m.payload.empty());
    }
    SECTION("a nonzero code") {
        auto v = request;
        v[1] = std::byte{3};
        CHECK(parse_quoted_echo(v, family, m) == parse_error::bad_code);
    }
}

// ---------------------------------------------------------------- raw IPv4

TEST_CASE("parse_ipv4_header", "[packet][parse][ipv4]") {
    // 20-byte header, TTL 57, ICMP, 198.51.100.7 -> 192.0.2.1, then 36 bytes.
    byte_vector v = from_hex_bytes({0x45, 0x00, 0x00, 0x38, 0x12, 0x34, 0x40, 0x00, 57, 1,
                                    0x00, 0x00, 198,  51,   100,  7,    192,  0,    2,  1});
    v.resize(56, std::byte{0x5a});
    ipv4_header h;
    REQUIRE(parse_ipv4_header(v, h) == parse_error::none);
    CHECK(h.header_size == 20);
    CHECK(h.ttl == 57);
    CHECK(h.protocol == 1);
    CHECK(h.source == ip_address::from_v4(0xc6336407));
    CHECK(h.destination == ip_address::from_v4(0xc0000201));

    SECTION("options") {
        auto w = v;
        w[0] = std::byte{0x47};
        REQUIRE(parse_ipv4_header(w, h) == parse_error::none);
        CHECK(h.header_size == 28);
    }
    SECTION("any protocol parses; the caller checks it") {
        auto w = v;
        w[9] = std::byte{17};
        REQUIRE(parse_ipv4_header(w, h) == parse_error::none);
        CHECK(h.protocol == 17);
    }
    SECTION("bad version or IHL") {
        for (int first : {0x65, 0x05, 0xf5, 0x44, 0x40, 0x41}) {
            auto w = v;
            w[0] = static_cast<std::byte>(first);
            CHECK(parse_ipv4_header(w, h) == parse_error::bad_ip_header);
            CHECK(h.header_size == 0);
        }
    }
    SECTION("total length shorter than the header is a bad header") {
        auto w = v;
        put16(w, 2, 19);
        CHECK(parse_ipv4_header(w, h) == parse_error::bad_ip_header);
        put16(w, 2, 20);
        CHECK(parse_ipv4_header(w, h) == parse_error::none);
    }
    SECTION("total length beyond the data is truncated, below it fine") {
        auto w = v;
        put16(w, 2, 57);
        CHECK(parse_ipv4_header(w, h) == parse_error::truncated);
        put16(w, 2, 40);
        CHECK(parse_ipv4_header(w, h) == parse_error::none);
    }
    SECTION("every truncation") {
        for (std::size_t n = 0; n < v.size(); ++n) {
            const exact_buffer buf{std::span(v).first(n)};
            REQUIRE(parse_ipv4_header(buf.span(), h) == parse_error::truncated);
        }
        auto w = v;
        w[0] = std::byte{0x4f};
        put16(w, 2, 60);
        w.resize(60);
        for (std::size_t n = 20; n < 60; ++n) {
            const exact_buffer buf{std::span(w).first(n)};
            REQUIRE(parse_ipv4_header(buf.span(), h) == parse_error::truncated);
        }
    }
}

// ---------------------------------------------------------------- garbage

namespace {

// Parses `data` every way the engine can and checks the results hang
// together. Returns the number of successful parses (to show the mutated
// inputs reach the deep paths).
int parse_everything(std::span<const std::byte> data) {
    int ok = 0;
    for (auto family : {ip_family::v4, ip_family::v6}) {
        icmp_message m;
        const auto e = parse_icmp(data, family, false, m);
        icmp_message again;
        REQUIRE(parse_icmp(data, family, false, again) == e);
        REQUIRE(again.payload.data() == m.payload.data());
        REQUIRE(again.payload.size() == m.payload.size());

        // A checksum check can only add a bad_checksum.
        icmp_message checked;
        const auto ec = parse_icmp(data, family, true, checked);
        if (family == ip_family::v6 || internet_checksum(data) == 0)
            REQUIRE(ec == e);
        else
            REQUIRE(ec == (data.size() < icmp_header_size ? parse_error::truncated
                                                          : parse_error::bad_checksum));

        if (data.size() < icmp_header_size)
            REQUIRE(e == parse_error::truncated);
        if (e == parse_error::none) {
            ++ok;
            REQUIRE(m.type == u8(data[0]));
            REQUIRE(m.code == u8(data[1]));
            REQUIRE(within(m.payload, data));
            switch (m.kind) {
            case icmp_kind::echo_reply:
            case icmp_kind::echo_request:
                REQUIRE(m.code == 0);
                REQUIRE(m.payload.data() == data.data() + icmp_header_size);
                REQUIRE(m.payload.size() == data.size() - icmp_header_size);
                REQUIRE_FALSE(m.quoted_destination);
                break;
            case icmp_kind::other:
                REQUIRE(m.payload.empty());
                REQUIRE_FALSE(m.quoted_destination);
                break;
            default: {
                REQUIRE(m.quoted_destination);
                REQUIRE(m.quoted_destination->family() == family);
                REQUIRE(data.size() >= quote_header_size(family));
                // The identifier and sequence are those of the 8 bytes
                // before the payload: the quoted echo request header.
                const std::size_t at = static_cast<std::size_t>(m.payload.data() - data.data());
                if (!m.payload.empty()) {
                    REQUIRE(at >= quote_header_size(family));
                    REQUIRE(u8(data[at - 8]) == (family == ip_family::v4 ? 8 : 128));
                    REQUIRE(m.identifier == (u8(data[at - 4]) << 8 | u8(data[at - 3])));
                    REQUIRE(m.sequence == (u8(data[at - 2]) << 8 | u8(data[at - 1])));
                }
                break;
            }
            }
            if (auto t = read_token(m.payload)) {
                REQUIRE(m.payload.size() >= token_size);
                const auto sent = static_cast<std::uint32_t>(m.payload.size());
                // A payload that matches really is token + fill.
                if (payload_matches(m.payload, sent, sent, &*t))
                    for (std::size_t i = token_size; i < m.payload.size(); ++i)
                        REQUIRE(u8(m.payload[i]) == static_cast<std::uint8_t>(i));
            } else {
                REQUIRE(m.payload.size() < token_size);
            }
        } else {
            REQUIRE(m.payload.empty());
            REQUIRE_FALSE(m.quoted_destination);
        }

        icmp_message q;
        const auto eq = parse_quoted_echo(data, family, q);
        if (eq == parse_error::none) {
            ++ok;
            REQUIRE(q.kind == icmp_kind::echo_request);
            REQUIRE(q.payload.data() == data.data() + icmp_header_size);
            REQUIRE(q.payload.size() == data.size() - icmp_header_size);
            // Our request is also a valid echo_request message.
            REQUIRE(e == parse_error::none);
            REQUIRE(m.kind == icmp_kind::echo_request);
        } else {
            REQUIRE(q.payload.empty());
        }
    }

    ipv4_header h;
    if (parse_ipv4_header(data, h) == parse_error::none) {
        ++ok;
        REQUIRE(h.header_size >= 20);
        REQUIRE(h.header_size <= 60);
        REQUIRE(h.header_size <= data.size());
        REQUIRE(h.protocol == u8(data[9]));
        // What follows is an ICMP message candidate, as the engine would pass it.
        icmp_message m;
        (void)parse_icmp(data.subspan(h.header_size), ip_family::v4, true, m);
    }
    (void)internet_checksum(data);
    return ok;
}

} // namespace

TEST_CASE("garbage and mutated packets never break the parsers", "[packet][parse][garbage]") {
    std::mt19937_64 rng(icmpengine::testing::test_seed("packet_garbage"));
    auto random_byte = [&] { return static_cast<std::byte>(rng()); };

    // Valid seeds for mutation: replies, requests, and errors of every kind
    // and quote size, plus a raw IPv4 packet.
    std::vector<byte_vector> corpus;
    for (auto family : {ip_family::v4, ip_family::v6}) {
        for (std::uint32_t size : {0U, 8U, 16U, 56U}) {
            const auto request = make_request(family, 1, 2, size, &sample_token, true);
            corpus.push_back(make_reply(family, 1, 2, size, &sample_token));
            corpus.push_back(request);
            for (std::uint8_t type = 0; type < 13; ++type)
                corpus.push_back(make_error(family, type, 4, request, size));
        }
    }
    {
        auto ip = make_error_v4(icmp4_time_exceeded, 0,
                                make_reply(ip_family::v4, 1, 2, 56, &sample_token), 56);
        ip.erase(ip.begin(), ip.begin() + 8); // an IPv4 packet carrying an echo reply
        corpus.push_back(ip);
    }

    int successes = 0;
    constexpr int random_rounds = 100000;
    constexpr int mutation_rounds = 100000;
    for (int round = 0; round < random_rounds; ++round) {
        byte_vector v(rng() % 201);
        for (auto& b : v)
            b = random_byte();
        // Bias a quarter of them towards interesting type bytes / IP versions.
        if (!v.empty() && round % 4 == 0) {
            constexpr std::uint8_t types[] = {0, 3, 8, 11, 12, 1, 2, 4, 128, 129, 0x45, 0x60};
            v[0] = static_cast<std::byte>(types[rng() % std::size(types)]);
        }
        const exact_buffer buf{v};
        successes += parse_everything(buf.span());
    }
    int mutated_successes = 0;
    for (int round = 0; round < mutation_rounds; ++round) {
        byte_vector v = corpus[rng() % corpus.size()];
        const int mutations = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < mutations && !v.empty(); ++i) {
            switch (rng() % 4) {
            case 0: // flip a bit
                v[rng() % v.size()] ^= static_cast<std::byte>(1U << (rng() % 8));
                break;
            case 1: // overwrite a byte
                v[rng() % v.size()] = random_byte();
                break;
            case 2: // truncate
                v.resize(rng() % (v.size() + 1));
                break;
            default: // append garbage
                for (std::size_t n = rng() % 16; n > 0; --n)
                    v.push_back(random_byte());
                break;
            }
        }
        const exact_buffer buf{v};
        mutated_successes += parse_everything(buf.span());
    }
    INFO("successful parses: random " << successes << ", mutated " << mutated_successes);
    // The mutation corpus must keep reaching the success paths, or the test
    // would only ever exercise the early rejections.
    CHECK(mutated_successes > mutation_rounds / 2);
    CHECK(successes > 0);
}
