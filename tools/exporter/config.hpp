// SPDX-License-Identifier: MIT
// smokeping_prober's YAML configuration (--config.file), read with
// yaml-cpp, and what it and the positional hosts turn into: target groups,
// then (once resolved, sharded) target_specs.
//
// The file, as smokeping_prober reads it (its config/config.go, master):
//
//     targets:                  # a list of target groups; absent, null or [] = none
//     - hosts: [a.example, 192.0.2.1]   # required, non-empty, no empty or repeated entry
//       host: a.example         # smokeping_prober >= 0.10: one host; folded into
//                               # hosts (giving both is an error here)
//       interval: 1s            # Go duration (time.ParseDuration), > 0
//       network: ip             # ip | ip4 | ip6
//       protocol: icmp          # icmp | udp (the same here: see target_group)
//       size: 56                # payload bytes, 24..65507
//       source: 192.0.2.7       # an IP address literal, of the network's family
//       tos: 0x20               # 0..255 (Go/YAML 1.1 integers: 32, 0x20, 0o40, 040)
//       dscp: 8                 # ours: 0..63, tos = dscp << 2; not with tos
//       labels: {site: fra1}    # extra labels (names: [a-zA-Z_][a-zA-Z0-9_]*, no
//                               # "__" prefix, not ip/host/source/tos); values are
//                               # scalars taken as text
//
// Stricter than smokeping_prober, on purpose (its newest decoder accepts
// these silently or fails later): unknown keys, keys given twice in one
// mapping, a key with no value (`size:`), a host listed twice in one group
// and a source of the wrong family are config_errors naming the line. The
// same host in two groups is fine (two series if their labels, source or
// tos differ; kept once by expand() if not).
#pragma once

#include "target.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace icmpengine_exporter {

/// Which address family a group's hosts resolve to (smokeping_prober's
/// `network:`): ip4 / ip6 = the first address of that family; ip = as Go's
/// net.ResolveIPAddr("ip", name), which smokeping_prober calls: the first
/// IPv4 address if there is one, else the first address (when the group has
/// a `source:`, its family decides instead). A literal of the other family
/// than ip4 / ip6 (or than the source) does not resolve.
enum class network_kind { ip, ip4, ip6 };

/// One entry of `targets:`. Defaults are smokeping_prober's (interval 1s,
/// network ip, protocol icmp, size 56) unless the command line changed them
/// (--ping.interval, --ping.size).
struct target_group {
    std::vector<std::string> hosts;
    std::chrono::nanoseconds interval = std::chrono::seconds(1);
    network_kind network = network_kind::ip;
    /// "icmp" or "udp". smokeping_prober uses raw sockets for icmp and
    /// unprivileged datagram ICMP sockets for udp; we always ping over
    /// datagram ICMP sockets, so both mean the same here (documented).
    std::string protocol = "icmp";
    std::uint32_t size = 56; ///< payload bytes (24..65507)
    std::string source;      ///< a local address, or empty
    std::uint8_t tos = 0;    ///< TOS byte (0..255); `dscp:` sets tos = dscp << 2
    label_list labels;       ///< sorted by name
    int line = 0;            ///< where the group starts in the file (1-based), 0 = command line
};

struct exporter_config {
    std::vector<target_group> groups;
};

/// A configuration that cannot be used: `file:line: reason` (line 0 =
/// the file as a whole).
class config_error : public std::runtime_error {
  public:
    config_error(std::string file, int line, const std::string& reason);
    const std::string& file() const noexcept { return m_file; }
    int line() const noexcept { return m_line; }

  private:
    std::string m_file;
    int m_line;
};

/// Defaults the command line sets for groups that do not say.
struct group_defaults {
    std::chrono::nanoseconds interval = std::chrono::seconds(1);
    std::uint32_t size = 56;
};

/// Parses a configuration's text; `file` names it in errors. Unknown keys,
/// wrong types, out-of-range values and bad durations (Go's
/// time.ParseDuration syntax: "1s", "500ms", "1m30s") are config_errors
/// naming the line.
exporter_config parse_config(std::string_view yaml, const std::string& file,
                             const group_defaults& defaults = {});
/// Reads and parses a file (a missing or unreadable file is a config_error
/// with line 0 and strerror's reason).
exporter_config load_config(const std::string& path, const group_defaults& defaults = {});

/// Go's time.ParseDuration: "1s", "500ms", "1m30s", "1.5h", "250us"
/// ("µs", "μs"), "-2s", "0"; nullopt if malformed or out of range
/// (beyond about 292 years). For --ping.interval too.
std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view text);

/// `--shard K/N`: this exporter pings the hosts whose shard_of(host, N) is
/// K (0 <= K < N).
struct shard_spec {
    std::uint32_t index = 0;
    std::uint32_t count = 1;
};
/// Parses "K/N"; nullopt if malformed or K >= N or N == 0.
std::optional<shard_spec> parse_shard(std::string_view text);
/// A stable hash of the host as written (FNV-1a, 64 bit) modulo `count`:
/// the same on every machine and every run, so N exporters split a fleet
/// without talking to each other.
/// Throws std::invalid_argument if count is 0.
std::uint32_t shard_of(std::string_view host, std::uint32_t count);
/// The hash shard_of uses: FNV-1a, 64 bit, over the bytes of `text`.
std::uint64_t fnv1a_64(std::string_view text) noexcept;

/// Turns a host into addresses; the exporter's real one resolves off the
/// engine's thread (resolver.hpp). Returns the addresses in resolver order
/// (empty = does not resolve).
using resolve_function =
    std::function<std::vector<ie::ip_address>(const std::string& host, network_kind network)>;

/// The targets a configuration describes for one shard: one per host
/// (literal addresses as they are; names through `resolve`, the address
/// network_kind says). Hosts that do not resolve, and literals of the wrong
/// family, are left out and reported in `unresolved` (host names as
/// written, each once, even if another group resolved it). Order: groups,
/// then hosts, as written; a host listed twice with the same identity is
/// kept once, as its first group says (interval, size).
///
/// The shard filter (shard_of(host) == shard.index) comes first, on the
/// host as written: `resolve` is asked only about this shard's names, and
/// a change in DNS never moves a host to another shard. `resolve` is
/// called once per (name, family), never for a literal; the family asked
/// is the group's network, or for network ip with a source, the source's.
struct expanded_targets {
    std::vector<target_spec> targets;
    std::vector<std::string> unresolved;
};
expanded_targets expand(const exporter_config& config, const shard_spec& shard,
                        const resolve_function& resolve);

/// For re-resolution of an unchanged configuration: a name that fails this
/// time (a DNS outage, a timeout) keeps the targets it had in `previous`,
/// so that its series and history go on rather than vanish and restart.
/// Those targets are appended to fresh.targets (an identity already there
/// is not added twice); fresh.unresolved still names the host. Not for a
/// reload: a changed configuration's old targets are not its targets.
expanded_targets keep_unresolved(const std::vector<target_spec>& previous, expanded_targets fresh);

} // namespace icmpengine_exporter
