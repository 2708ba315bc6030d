// Reply matching: what the engine does for each echo reply between the CQE
// and the deadline heap, as engine_core::find_slot does it (lib/engine.cpp;
// keep the two in step). With a token: parse the reply, read the token,
// check slot index and sequence, recompute the keyed tag (which binds slot,
// generation, sequence, target and size: engine_core::ping_tag), check the
// payload, then generation and state. Without one (payloads < 16 bytes):
// look through the slots that share the sequence number (index modulo 2^16)
// for the peer.
//
// The slot table has N entries (1e3, 1e5, 1e6: the pings in flight) and the
// replies are for random slots, so at 1e6 most lookups miss the cache as
// they would in the engine; the reply itself is hot (the kernel just wrote
// it).
#include "engine_core.hpp"
#include "packet.hpp"

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
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
    std::vector<slot> slots;
    std::vector<std::vector<std::byte>> replies; // ICMP header onwards
    std::vector<ip_address> peers;
};

ip_address target_of(std::size_t i) {
    return ip_address::from_v4(0x7f010001u + static_cast<std::uint32_t>(i));
}

/// engine_core::ping_tag: token_tag keyed with the engine's secret mixed
/// with the target's address and the payload size.
std::uint64_t ping_tag(std::uint32_t slot, std::uint32_t generation, std::uint16_t sequence,
                       const ip_address& target, std::size_t payload_size) noexcept {
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    std::memcpy(&a, target.bytes().data(), 8);
    std::memcpy(&b, target.bytes().data() + 8, 8);
    const std::uint64_t size_and_family =
        std::uint64_t{payload_size} << 1 | (target.is_v6() ? 1u : 0u);
    const token_key k{key.k0 ^ a, key.k1 ^ (b + size_and_family * 0x9e3779b97f4a7c15ull)};
    return token_tag(k, slot, generation, sequence);
}

/// N slots in flight, each to its own target, and replies for random ones.
fixture make_fixture(std::size_t n, std::uint32_t payload_size) {
    fixture f;
    f.slots.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        slot& s = f.slots[i];
        s.target = target_of(i);
        s.generation = 1 + static_cast<std::uint32_t>(i % 5);
        s.payload_size = payload_size;
        s.state = slot_state::in_flight;
        s.has_token = payload_size >= token_size;
    }
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::size_t> pick(0, n - 1);
    for (std::size_t k = 0; k < distinct_replies; ++k) {
        const std::size_t i = pick(rng);
        const slot& s = f.slots[i];
        const auto sequence = static_cast<std::uint16_t>(i & 0xffffu);
        const echo_token token{static_cast<std::uint32_t>(i), s.generation,
                               ping_tag(static_cast<std::uint32_t>(i), s.generation, sequence,
                                        s.target, payload_size)};
        std::vector<std::byte> packet(icmp_header_size + payload_size);
        build_echo_request(packet, ip_family::v4, 0, sequence, payload_size,
                           s.has_token ? &token : nullptr, false);
        packet[0] = std::byte{icmp4_echo_reply};
        f.replies.push_back(std::move(packet));
        f.peers.push_back(s.target);
    }
    return f;
}

bool same_host(const ip_address& a, const ip_address& b) noexcept {
    return a.family() == b.family() && a.bytes() == b.bytes() &&
           (a.scope_id() == 0 || b.scope_id() == 0 || a.scope_id() == b.scope_id());
}

/// The slot a reply belongs to, or -1: find_slot's token path.
std::int64_t match_with_token(const std::vector<slot>& slots, std::span<const std::byte> packet,
                              const ip_address& peer) {
    icmp_message m;
    if (parse_icmp(packet, ip_family::v4, false, m) != parse_error::none ||
        m.kind != icmp_kind::echo_reply || m.payload.size() < token_size)
        return -1;
    const echo_token t = *read_token(m.payload);
    if (t.slot >= slots.size() || (t.slot & 0xffffu) != m.sequence)
        return -1;
    const slot& s = slots[t.slot];
    const std::size_t sent_size = m.payload.size(); // a reply is as long as its request
    if (ping_tag(t.slot, t.generation, m.sequence, peer, sent_size) != t.tag ||
        !payload_matches(m.payload, sent_size, static_cast<std::uint32_t>(sent_size), &t))
        return -1;
    if (t.generation != s.generation || s.state != slot_state::in_flight)
        return -1;
    return t.slot;
}

/// find_slot's token-less path: every slot with this sequence number.
std::int64_t match_without_token(const std::vector<slot>& slots, std::span<const std::byte> packet,
                                 const ip_address& peer) {
    icmp_message m;
    if (parse_icmp(packet, ip_family::v4, false, m) != parse_error::none ||
        m.kind != icmp_kind::echo_reply)
        return -1;
    std::int64_t found = -1;
    for (std::size_t i = m.sequence; i < slots.size(); i += 65536) {
        const slot& s = slots[i];
        if (!same_host(s.target, peer) || s.state != slot_state::in_flight || s.has_token ||
            s.payload_size != m.payload.size())
            continue;
        if (found >= 0)
            return -1; // ambiguous: refused, never guessed
        found = static_cast<std::int64_t>(i);
    }
    if (found >= 0 &&
        !payload_matches(m.payload, m.payload.size(),
                         slots[static_cast<std::size_t>(found)].payload_size, nullptr))
        return -1;
    return found;
}

template <bool WithToken>
void BM_match_reply(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const fixture f = make_fixture(n, WithToken ? 56 : 8);
    std::size_t k = 0;
    std::int64_t matched = 0;
    for (auto _ : state) {
        const std::int64_t index = WithToken
                                       ? match_with_token(f.slots, f.replies[k], f.peers[k])
                                       : match_without_token(f.slots, f.replies[k], f.peers[k]);
        matched += index >= 0;
        benchmark::DoNotOptimize(index);
        k = (k + 1) % distinct_replies;
    }
    if (matched != static_cast<std::int64_t>(state.iterations()))
        state.SkipWithError("a reply did not match its slot");
    state.SetItemsProcessed(state.iterations());
}

void BM_match_reply_token(benchmark::State& state) {
    BM_match_reply<true>(state);
}
void BM_match_reply_tokenless(benchmark::State& state) {
    BM_match_reply<false>(state);
}
BENCHMARK(BM_match_reply_token)->ArgName("in_flight")->Arg(1000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(BM_match_reply_tokenless)->ArgName("in_flight")->Arg(1000)->Arg(100'000)->Arg(1'000'000);

} // namespace

BENCHMARK_MAIN();
