// SPDX-License-Identifier: MIT
// Writes the seed corpora of the fuzz targets: genuine packets built with
// lib/packet.hpp for fuzz_packet, and engine scenarios in the format of
// matching_input.hpp for fuzz_matching. The output is deterministic;
// regenerate the committed corpus with
//
//     build/tests/fuzz/make_corpus tests/fuzz/corpus
//
// which (re)writes DIR/packet/* and DIR/matching/*. Files the fuzzer found
// and someone added by hand are left alone.
#include "matching_input.hpp"
#include "packet.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace icmpengine;
using namespace icmpengine::detail;
namespace layout = icmpengine::fuzz::matching;
namespace fs = std::filesystem;
using byte_vector = std::vector<std::byte>;

void put16(byte_vector& v, std::size_t at, std::uint16_t x) {
    v.at(at) = static_cast<std::byte>(x >> 8);
    v.at(at + 1) = static_cast<std::byte>(x);
}

byte_vector cat(byte_vector a, const byte_vector& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

byte_vector cut(byte_vector v, std::size_t size) {
    v.resize(std::min(v.size(), size));
    return v;
}

constexpr echo_token token{.slot = 7, .generation = 3, .tag = 0x5f3759df0badc0deULL};

byte_vector request(ip_family f, std::uint32_t size, bool checksum = false) {
    byte_vector v(icmp_header_size + size);
    build_echo_request(v, f, 0x1234, 7, size, size >= token_size ? &token : nullptr, checksum);
    return v;
}

byte_vector reply(ip_family f, std::uint32_t size) {
    byte_vector v = request(f, size);
    v[0] = static_cast<std::byte>(f == ip_family::v4 ? icmp4_echo_reply : icmp6_echo_reply);
    if (f == ip_family::v4)
        put16(v, 2, internet_checksum(v));
    return v;
}

// An IPv4 header for `inner` (IHL 5 + options words, the options NOPs).
byte_vector ipv4_header(std::size_t inner, std::uint32_t source, std::uint32_t destination,
                        unsigned options = 0, std::uint16_t fragment = 0) {
    byte_vector v(ipv4_min_header_size + options * 4, std::byte{1});
    v[0] = static_cast<std::byte>(0x45 + options);
    v[1] = std::byte{0};
    put16(v, 2, static_cast<std::uint16_t>(v.size() + inner));
    put16(v, 4, 0x4242);
    put16(v, 6, fragment);
    v[8] = std::byte{64};
    v[9] = std::byte{1};
    put16(v, 10, 0);
    put16(v, 12, static_cast<std::uint16_t>(source >> 16));
    put16(v, 14, static_cast<std::uint16_t>(source));
    put16(v, 16, static_cast<std::uint16_t>(destination >> 16));
    put16(v, 18, static_cast<std::uint16_t>(destination));
    return v;
}

byte_vector ipv6_header(std::size_t inner) {
    byte_vector v(ipv6_header_size);
    v[0] = std::byte{0x60};
    put16(v, 4, static_cast<std::uint16_t>(inner));
    v[6] = std::byte{58};
    v[7] = std::byte{1};
    v[8] = std::byte{0x20}; // 2001:db8::fe -> 2001:db8::1
    v[9] = std::byte{0x01};
    v[10] = std::byte{0x0d};
    v[11] = std::byte{0xb8};
    v[23] = std::byte{0xfe};
    v[24] = std::byte{0x20};
    v[25] = std::byte{0x01};
    v[26] = std::byte{0x0d};
    v[27] = std::byte{0xb8};
    v[39] = std::byte{0x01};
    return v;
}

// An ICMP error quoting `quoted` bytes of our request behind its IP header.
byte_vector error(ip_family f, std::uint8_t type, std::uint8_t code, std::uint32_t size,
                  std::size_t quoted) {
    const byte_vector req = request(f, size);
    const byte_vector ip = f == ip_family::v4 ? ipv4_header(req.size(), 0x0a0000fe, 0xc0000201)
                                              : ipv6_header(req.size());
    byte_vector v(icmp_header_size);
    v[0] = static_cast<std::byte>(type);
    v[1] = static_cast<std::byte>(code);
    v = cat(cat(v, ip), cut(req, quoted));
    if (f == ip_family::v4)
        put16(v, 2, internet_checksum(v));
    return v;
}

void write(const fs::path& path, const byte_vector& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
    if (!out) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        std::exit(1);
    }
}

void packet_corpus(const fs::path& dir) {
    for (const ip_family f : {ip_family::v4, ip_family::v6}) {
        const std::string v = f == ip_family::v4 ? "v4-" : "v6-";
        for (const std::uint32_t size : {0U, 8U, 56U}) {
            const std::string n = std::to_string(size);
            write(dir / (v + "request-" + n), request(f, size, f == ip_family::v4));
            write(dir / (v + "reply-" + n), reply(f, size));
            const auto u = f == ip_family::v4 ? std::uint8_t{3} : std::uint8_t{1};
            const auto t = f == ip_family::v4 ? std::uint8_t{11} : std::uint8_t{3};
            write(dir / (v + "unreachable-" + n), error(f, u, 1, size, 8 + size));
            write(dir / (v + "time-exceeded-" + n), error(f, t, 0, size, 8 + size));
        }
        // RFC 792 routers quote the ICMP header only.
        write(dir / (v + "time-exceeded-header-only"),
              error(f, f == ip_family::v4 ? 11 : 3, 0, 56, 8));
        write(dir / (v + "packet-too-big"),
              f == ip_family::v4 ? error(f, 3, 4, 56, 64) : error(f, 2, 0, 56, 64));
        write(dir / (v + "parameter-problem"), error(f, f == ip_family::v4 ? 12 : 4, 0, 8, 16));
        write(dir / (v + "reply-truncated"), cut(reply(f, 56), 5));
        write(dir / (v + "error-truncated-in-ip-header"),
              cut(error(f, f == ip_family::v4 ? 3 : 1, 3, 56, 64), 20));
    }
    // Raw IPv4 sockets deliver the IP header too.
    const byte_vector r = reply(ip_family::v4, 56);
    write(dir / "raw-v4-reply-56", cat(ipv4_header(r.size(), 0xc0000201, 0x0a0000fe), r));
    write(dir / "raw-v4-reply-options", cat(ipv4_header(r.size(), 0xc0000201, 0x0a0000fe, 3), r));
    const byte_vector e = error(ip_family::v4, 11, 0, 56, 64);
    write(dir / "raw-v4-time-exceeded", cat(ipv4_header(e.size(), 0xcb007101, 0x0a0000fe), e));
    // A quote of a non-first fragment (never our request's header).
    byte_vector frag = error(ip_family::v4, 3, 1, 8, 16);
    put16(frag, 8 + 6, 0x0010);
    put16(frag, 2, 0);
    put16(frag, 2, internet_checksum(frag));
    write(dir / "v4-unreachable-fragment", frag);
    // RFC 4884: a length attribute (32 words) over the first 128 octets of
    // a 228-byte datagram, then an extension structure that is not part of
    // the quote; and the same for ICMPv6 (16 words of 8 octets).
    byte_vector ext = error(ip_family::v4, 11, 0, 200, 108);
    ext[5] = std::byte{32};
    ext = cat(ext, byte_vector{std::byte{0x20}, std::byte{0}, std::byte{0}, std::byte{0}});
    put16(ext, 2, 0);
    put16(ext, 2, internet_checksum(ext));
    write(dir / "v4-time-exceeded-rfc4884", ext);
    // A length attribute under 128 octets is not RFC 4884's: ignored.
    ext[5] = std::byte{30};
    put16(ext, 2, 0);
    put16(ext, 2, internet_checksum(ext));
    write(dir / "v4-time-exceeded-rfc4884-too-short", ext);
    byte_vector ext6 = error(ip_family::v6, 3, 0, 200, 88);
    ext6[4] = std::byte{16};
    write(dir / "v6-time-exceeded-rfc4884",
          cat(ext6, byte_vector{std::byte{0x20}, std::byte{0}, std::byte{0}, std::byte{0}}));
}

// --- fuzz_matching scenarios (matching_input.hpp).

struct scenario {
    std::vector<std::uint8_t> bytes;

    // header + launches: {slot byte, host, size byte, generation byte}
    scenario(std::uint8_t mode, std::vector<std::array<std::uint8_t, 4>> launches) {
        bytes = {mode, 0, static_cast<std::uint8_t>(launches.size() - 1)};
        for (const auto& l : launches)
            bytes.insert(bytes.end(), l.begin(), l.end());
    }
    scenario& add(layout::event kind, std::vector<std::uint8_t> fields) {
        bytes.push_back(static_cast<std::uint8_t>(kind));
        bytes.insert(bytes.end(), fields.begin(), fields.end());
        return *this;
    }
    // Unchanged packets end with the `change` fields {0, 0}.
    scenario& reply(std::uint8_t ping, std::uint8_t peer = 0, std::uint8_t buffer = 0) {
        return add(layout::event::reply, {ping, peer, 0, buffer, 0, 0});
    }
    scenario& error(std::uint8_t ping, std::uint8_t type, std::uint16_t quote) {
        return add(layout::event::error, {ping, 0, type, 0, static_cast<std::uint8_t>(quote >> 8),
                                          static_cast<std::uint8_t>(quote), 0, 0, 0});
    }
    scenario& errqueue(std::uint8_t ping, std::uint16_t quote) {
        return add(layout::event::errqueue, {ping, 0, static_cast<std::uint8_t>(quote >> 8),
                                             static_cast<std::uint8_t>(quote), 0, 0});
    }
    scenario& relaunch(std::uint8_t ping, std::uint8_t host, std::uint8_t size) {
        return add(layout::event::relaunch, {ping, host, size});
    }
    byte_vector data() const {
        byte_vector v;
        for (const std::uint8_t b : bytes)
            v.push_back(static_cast<std::byte>(b));
        return v;
    }
};

void matching_corpus(const fs::path& dir) {
    // Size bytes: 0 -> 0, 2 -> 8, 4 -> 16, 6 -> 56 (layout::size_table).
    for (const std::uint8_t mode : {0, 1, 2, 3}) {
        const std::string m = std::string(mode & layout::mode_v6 ? "v6" : "v4") +
                              (mode & layout::mode_raw ? "-raw-" : "-dgram-");
        // Three pings, 0 / 8 / 56 payload bytes, each answered once, then
        // the duplicates.
        write(dir / (m + "replies"), scenario(mode, {{0, 0, 0, 0}, {1, 1, 2, 0}, {2, 2, 6, 0}})
                                         .reply(0)
                                         .reply(1)
                                         .reply(2)
                                         .reply(0)
                                         .reply(2)
                                         .data());
        // Errors quoting 0, 8 and 56 payload bytes, from a router or (ping
        // sockets) through the error queue.
        scenario errors(mode, {{0, 0, 0, 0}, {1, 1, 2, 0}, {2, 2, 6, 0}});
        if (mode & layout::mode_raw)
            errors.error(0, 1, 8).error(1, 0, 16).error(2, 2, 64);
        else
            errors.errqueue(0, 0).errqueue(1, 8).errqueue(2, 56);
        write(dir / (m + "errors"), errors.data());
        // A reply from the wrong host, then from the right one; a reply
        // cut by a small receive buffer.
        write(dir / (m + "wrong-peer"), scenario(mode, {{0, 0, 6, 0}, {1, 0, 2, 0}})
                                            .reply(0, 2)
                                            .reply(0)
                                            .reply(1, 0, 6)
                                            .data());
        // The same for a token-less ping, where only the source (or the
        // quoted destination) tells: a reply from the wrong host, an ICMP
        // error and an error-queue quote naming another destination, then
        // the genuine reply.
        write(dir / (m + "tokenless-wrong-peer"),
              scenario(mode, {{0, 0, 2, 0}})
                  .reply(0, 2)
                  .add(layout::event::error, {0, 2, 0, 0, 0, 0, 0, 0, 0})
                  .add(layout::event::errqueue, {0, 2, 0, 8, 0, 0})
                  .reply(0)
                  .data());
        // A slot reused: the old use's reply is stale.
        write(dir / (m + "stale"), scenario(mode, {{0, 0, 6, 5}})
                                       .relaunch(0, 0, 6)
                                       .reply(layout::ping_previous)
                                       .reply(0)
                                       .data());
        // Sequences shared 2^16 slots apart: token pings tell them apart,
        // token-less ones to one host cannot both be in flight.
        write(dir / (m + "shared-sequence"),
              scenario(mode, {{0, 0, 6, 0}, {8, 0, 6, 0}, {1, 1, 2, 0}, {9, 1, 2, 0}})
                  .reply(1)
                  .reply(0)
                  .error(2, 0, 8)
                  .errqueue(1, 0)
                  .data());
    }
    // A changed reply: one payload byte flipped, then the genuine one.
    write(dir / "v4-dgram-changed", scenario(0, {{0, 0, 6, 0}})
                                        .add(layout::event::reply, {0, 0, 0, 0, 0, 1, 0, 20, 0x40})
                                        .reply(0)
                                        .data());
    // Replies with a pattern byte flipped, past the token of a 56-byte
    // payload and in an 8-byte one (no token), then the genuine ones.
    for (const std::uint8_t mode : {0, 1})
        write(dir / (mode == 0 ? "v4-dgram-changed-pattern" : "v6-dgram-changed-pattern"),
              scenario(mode, {{0, 0, 6, 0}, {1, 1, 2, 0}})
                  .add(layout::event::reply, {0, 0, 0, 0, 0, 1, 0, 40, 0x40})
                  .add(layout::event::reply, {1, 0, 0, 0, 0, 1, 0, 12, 0x01})
                  .reply(0)
                  .reply(1)
                  .data());
    // Raw IPv4: a 56-byte reply cut by an 80-byte receive buffer.
    write(dir / "v4-raw-reply-cut", scenario(2, {{0, 0, 6, 0}}).reply(0, 0, 40).data());
    // ICMP errors quoting 8 payload bytes (part of the token) that are not
    // what the ping sent: the generation changed (a raw ICMPv6 error, an
    // error-queue quote), or the quote is of the slot's previous use.
    write(dir / "v6-raw-short-quote-changed",
          scenario(3, {{0, 0, 6, 0}})
              .add(layout::event::error, {0, 0, 0, 0, 0, 8, 0, 0, 1, 0, 63, 0x01})
              .data());
    write(dir / "v4-dgram-short-quote-changed",
          scenario(0, {{0, 0, 6, 0}})
              .add(layout::event::errqueue, {0, 0, 0, 8, 0, 1, 0, 15, 0x01})
              .data());
    write(dir / "v4-dgram-short-quote-stale",
          scenario(0, {{0, 0, 6, 0}}).relaunch(0, 0, 6).errqueue(layout::ping_previous, 8).data());
    // Raw bytes on each path.
    write(dir / "v6-raw-bytes",
          scenario(3, {{0, 0, 4, 0}})
              .add(layout::event::raw_bytes, {0, 0, 0, 12, 129, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
              .add(layout::event::raw_bytes, {1, 1, 0, 8, 128, 0, 0, 0, 0, 0, 0, 0})
              .data());
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr,
                     "usage: %s CORPUS_DIR (writes CORPUS_DIR/packet, CORPUS_DIR/matching)\n",
                     argv[0]);
        return 2;
    }
    const fs::path root = argv[1];
    fs::create_directories(root / "packet");
    fs::create_directories(root / "matching");
    packet_corpus(root / "packet");
    matching_corpus(root / "matching");
    return 0;
}
