// SPDX-License-Identifier: MIT
// Reply matching: what the engine does for each echo reply between the CQE
// and ending the ping, with the library's own code (lib/reply_matcher.hpp):
// parse_datagram, then reply_matcher::match over the engine's slot table.
// With a token: read it, check slot index and sequence, recompute the keyed
// tag (which binds slot, generation, sequence, target and size), check the
// source and the payload, then generation and state. Without one (payloads
// < 16 bytes): look through the slots that share the sequence number (index
// modulo 2^16) for the source.
//
// The slot table has N slots in flight (1e3, 1e5, 1e6), taken with
// slot_table::alloc and begin_use as engine_core::launch takes them, each to
// its own target, and the replies are for random slots, so at 1e6 most
// lookups miss the cache as they would in the engine; the reply itself is
// hot (the kernel just wrote it).
#include "packet.hpp"
#include "reply_matcher.hpp"
#include "slot_table.hpp"

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <vector>

namespace {

using namespace icmpengine::detail;
using icmpengine::ip_address;
using icmpengine::ip_family;

constexpr token_key key{0x9e3779b97f4a7c15ULL, 0xd1b54a32d192ed03ULL};
constexpr std::size_t distinct_replies = 4096;

struct fixture {
    explicit fixture(std::uint32_t n) : slots(n) {}
    slot_table slots;
    reply_matcher matcher{key};
    std::vector<std::vector<std::byte>> replies; // ICMP header onwards
    std::vector<ip_address> peers;
    std::vector<std::uint32_t> expected;
};

ip_address target_of(std::size_t i) {
    return ip_address::from_v4(0x7f010001u + static_cast<std::uint32_t>(i));
}

/// N pings in flight, each to its own target, and the replies to random
/// ones, built as engine_core::build_request builds the requests.
std::unique_ptr<fixture> make_fixture(std::size_t n, std::uint32_t payload_size) {
    auto f = std::make_unique<fixture>(static_cast<std::uint32_t>(n));
    const bool has_token = payload_size >= token_size;
    for (std::size_t i = 0; i < n; ++i) {
        const ip_address target = target_of(i);
        const std::uint32_t index = f->slots.alloc(target, has_token);
        if (index == no_slot)
            return nullptr;
        f->slots.begin_use(index, target, payload_size);
    }
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::uint32_t> pick(0, static_cast<std::uint32_t>(n - 1));
    for (std::size_t k = 0; k < distinct_replies; ++k) {
        const std::uint32_t i = pick(rng);
        const slot& s = f->slots[i];
        const auto sequence = static_cast<std::uint16_t>(i & 0xffffu);
        const echo_token token{i, s.generation,
                               f->matcher.tag(i, s.generation, sequence, s.target, payload_size)};
        std::vector<std::byte> packet(icmp_header_size + payload_size);
        build_echo_request(packet, ip_family::v4, 0, sequence, payload_size,
                           has_token ? &token : nullptr, false);
        packet[0] = std::byte{icmp4_echo_reply};
        f->replies.push_back(std::move(packet));
        f->peers.push_back(s.target);
        f->expected.push_back(i);
    }
    return f;
}

/// engine_core::process_message and match_reply, up to the verdict: an
/// ICMPv4 datagram ("ping") socket's reply, received whole.
match_verdict match_one(const fixture& f, std::span<const std::byte> packet,
                        const ip_address& peer) {
    const datagram d{packet, packet.size(), peer, 64};
    const parsed_datagram p = parse_datagram(d, ip_family::v4, false, 0);
    if (p.what != parsed_datagram::kind::echo_reply)
        return {};
    return f.matcher.match(f.slots, p.message, p.source, p.payload_length, false);
}

void BM_match_reply(benchmark::State& state, std::uint32_t payload_size) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::unique_ptr<fixture> f = make_fixture(n, payload_size);
    if (!f) {
        state.SkipWithError("the slot table refused a ping");
        return;
    }
    std::size_t k = 0;
    std::int64_t matched = 0;
    for (auto _ : state) {
        const match_verdict v = match_one(*f, f->replies[k], f->peers[k]);
        matched += v.what == match_verdict::kind::matched && v.slot == f->expected[k];
        benchmark::DoNotOptimize(v);
        k = (k + 1) % distinct_replies;
    }
    if (matched != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a reply did not match its slot");
    state.SetItemsProcessed(state.iterations());
}

void BM_match_reply_token(benchmark::State& state) {
    BM_match_reply(state, 56);
}
void BM_match_reply_tokenless(benchmark::State& state) {
    BM_match_reply(state, 8);
}
BENCHMARK(BM_match_reply_token)->ArgName("in_flight")->Arg(1000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(BM_match_reply_tokenless)->ArgName("in_flight")->Arg(1000)->Arg(100'000)->Arg(1'000'000);

} // namespace

BENCHMARK_MAIN();
