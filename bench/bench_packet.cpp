// SPDX-License-Identifier: MIT
// Microbenchmarks for lib/packet.hpp: what the engine does per ping on the
// CPU besides the syscalls. Building a request (v4 / v6, with the token; raw
// IPv4 also computes the checksum; ping's default size and a full-MTU one),
// parsing a reply, an ICMP error and a raw socket's IPv4 header, the token
// tag, and the payload check of a reply.
//
//     bench_packet --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include "packet.hpp"

#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace {

using namespace icmpengine::detail;
using icmpengine::ip_family;

constexpr std::uint32_t payload_size = 56; // ping's default
constexpr token_key key{0x0123456789abcdefULL, 0xfedcba9876543210ULL};

ip_family family_arg(const benchmark::State& state) {
    return state.range(0) == 4 ? ip_family::v4 : ip_family::v6;
}

/// An echo request as the engine builds it for slot 1234, generation 7.
std::vector<std::byte> request(ip_family family, std::uint32_t size = payload_size) {
    std::vector<std::byte> packet(icmp_header_size + size);
    const echo_token token{1234, 7, token_tag(key, 1234, 7, 1234)};
    build_echo_request(packet, family, 0, 1234, size, &token, false);
    return packet;
}

/// The reply to request(): the same bytes with the reply type (the kernel
/// echoes the payload unchanged; datagram sockets hand us ICMP onwards).
std::vector<std::byte> reply(ip_family family) {
    std::vector<std::byte> packet = request(family);
    packet[0] = std::byte{family == ip_family::v4 ? icmp4_echo_reply : icmp6_echo_reply};
    return packet;
}

/// A host unreachable quoting the whole request after its IP header, as a
/// router quotes it.
std::vector<std::byte> unreachable(ip_family family) {
    const std::vector<std::byte> echo = request(family);
    std::vector<std::byte> packet(icmp_header_size);
    packet[0] =
        std::byte{family == ip_family::v4 ? icmp4_dest_unreachable : icmp6_dest_unreachable};
    packet[1] = std::byte{1};
    if (family == ip_family::v4) {
        std::array<std::uint8_t, 20> ip{0x45, 0,  0,    static_cast<std::uint8_t>(20 + echo.size()),
                                        0,    0,  0x40, 0,
                                        64,   1,  0,    0,
                                        198,  18, 0,    1,
                                        198,  19, 0,    1};
        for (std::uint8_t b : ip)
            packet.push_back(std::byte{b});
    } else {
        std::array<std::uint8_t, 40> ip{0x60, 0, 0, 0, 0, static_cast<std::uint8_t>(echo.size()),
                                        58,   64};
        ip[8] = 0x20; // 2001:db8::1 -> 2001:db8::2 (documentation prefix)
        ip[9] = 0x01;
        ip[10] = 0x0d;
        ip[11] = 0xb8;
        ip[23] = 1;
        ip[24] = 0x20;
        ip[25] = 0x01;
        ip[26] = 0x0d;
        ip[27] = 0xb8;
        ip[39] = 2;
        for (std::uint8_t b : ip)
            packet.push_back(std::byte{b});
    }
    packet.insert(packet.end(), echo.begin(), echo.end());
    return packet;
}

void BM_build_echo_request(benchmark::State& state) {
    const ip_family family = family_arg(state);
    const bool raw = state.range(1) != 0;
    std::array<std::byte, icmp_header_size + payload_size> out{};
    std::uint32_t slot = 0;
    for (auto _ : state) {
        const auto sequence = static_cast<std::uint16_t>(slot);
        const echo_token token{slot, 1, token_tag(key, slot, 1, sequence)};
        benchmark::DoNotOptimize(
            build_echo_request(out, family, 0x4242, sequence, payload_size, &token, raw));
        benchmark::ClobberMemory();
        ++slot;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_build_echo_request)->ArgNames({"v", "raw"})->Args({4, 0})->Args({6, 0})->Args({4, 1});

/// A full-MTU request (1472 payload bytes): the fill pattern dominates.
void BM_build_echo_request_large(benchmark::State& state) {
    constexpr std::uint32_t size = 1472;
    const bool raw = state.range(0) != 0;
    std::vector<std::byte> out(icmp_header_size + size);
    std::uint32_t slot = 0;
    for (auto _ : state) {
        const auto sequence = static_cast<std::uint16_t>(slot);
        const echo_token token{slot, 1, token_tag(key, slot, 1, sequence)};
        benchmark::DoNotOptimize(
            build_echo_request(out, ip_family::v4, 0x4242, sequence, size, &token, raw));
        benchmark::ClobberMemory();
        ++slot;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_build_echo_request_large)->ArgName("raw")->Arg(0)->Arg(1);

void BM_parse_reply(benchmark::State& state) {
    const ip_family family = family_arg(state);
    const std::vector<std::byte> packet = reply(family);
    icmp_message m;
    for (auto _ : state) {
        benchmark::DoNotOptimize(parse_icmp(packet, family, false, m));
        benchmark::DoNotOptimize(m);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_parse_reply)->ArgName("v")->Arg(4)->Arg(6);

void BM_parse_unreachable(benchmark::State& state) {
    const ip_family family = family_arg(state);
    const std::vector<std::byte> packet = unreachable(family);
    icmp_message m;
    if (parse_icmp(packet, family, false, m) != parse_error::none || !m.quoted_destination) {
        state.SkipWithError("the benchmark's ICMP error does not parse");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(parse_icmp(packet, family, false, m));
        benchmark::DoNotOptimize(m);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_parse_unreachable)->ArgName("v")->Arg(4)->Arg(6);

/// A raw IPv4 socket's reply: the IPv4 checksum is verified too.
void BM_parse_reply_checksum_v4(benchmark::State& state) {
    std::vector<std::byte> packet = reply(ip_family::v4);
    const std::uint16_t sum = internet_checksum(packet);
    packet[2] = std::byte{static_cast<std::uint8_t>(sum >> 8)};
    packet[3] = std::byte{static_cast<std::uint8_t>(sum)};
    icmp_message m;
    for (auto _ : state) {
        benchmark::DoNotOptimize(parse_icmp(packet, ip_family::v4, true, m));
        benchmark::DoNotOptimize(m);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_parse_reply_checksum_v4);

/// What a raw IPv4 socket delivers before the ICMP message: its IP header.
void BM_parse_ipv4_header(benchmark::State& state) {
    const std::vector<std::byte> echo = reply(ip_family::v4);
    const std::array<std::uint8_t, 20> ip{
        0x45, 0,  0,    static_cast<std::uint8_t>(20 + echo.size()), // version, IHL, total length
        0,    0,  0x40, 0,                                           // DF
        64,   1,  0,    0,                                           // TTL, ICMP
        198,  18, 0,    1,                                           // from
        198,  19, 0,    2};                                          // to
    std::vector<std::byte> packet;
    for (std::uint8_t b : ip)
        packet.push_back(std::byte{b});
    packet.insert(packet.end(), echo.begin(), echo.end());
    ipv4_header h;
    if (parse_ipv4_header(packet, h) != parse_error::none) {
        state.SkipWithError("the benchmark's IPv4 header does not parse");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(parse_ipv4_header(packet, h));
        benchmark::DoNotOptimize(h);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_parse_ipv4_header);

void BM_internet_checksum(benchmark::State& state) {
    const std::vector<std::byte> data(static_cast<std::size_t>(state.range(0)), std::byte{0xa5});
    for (auto _ : state)
        benchmark::DoNotOptimize(internet_checksum(data));
    state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_internet_checksum)->Arg(64)->Arg(1500);

void BM_token_tag(benchmark::State& state) {
    std::uint32_t slot = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(token_tag(key, slot, 3, static_cast<std::uint16_t>(slot)));
        ++slot;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_token_tag);

/// The payload check of a reply: token read, then the fill pattern compared.
void BM_payload_matches(benchmark::State& state) {
    const auto size = static_cast<std::uint32_t>(state.range(0));
    std::vector<std::byte> packet = request(ip_family::v4, size);
    const std::span<const std::byte> payload = std::span(packet).subspan(icmp_header_size);
    for (auto _ : state) {
        const std::optional<echo_token> t = read_token(payload);
        benchmark::DoNotOptimize(payload_matches(payload, size, size, &*t));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_payload_matches)->Arg(56)->Arg(1472);

} // namespace

BENCHMARK_MAIN();
