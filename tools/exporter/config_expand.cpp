// SPDX-License-Identifier: MIT
// From a configuration to the targets one exporter pings: the shard filter
// (on the host as written, so that a shard keeps its hosts whatever DNS
// answers), then literal addresses or the resolve function, then one
// target_spec per (host, identity).
#include "config.hpp"

#include <charconv>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

namespace icmpengine_exporter {

std::optional<shard_spec> parse_shard(std::string_view text) {
    const std::size_t slash = text.find('/');
    if (slash == std::string_view::npos)
        return std::nullopt;
    auto number = [](std::string_view s) -> std::optional<std::uint32_t> {
        std::uint32_t n = 0;
        if (s.empty() || s.front() < '0' || s.front() > '9')
            return std::nullopt; // no sign, no space: digits only
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec != std::errc{} || end != s.data() + s.size())
            return std::nullopt;
        return n;
    };
    const std::optional<std::uint32_t> index = number(text.substr(0, slash));
    const std::optional<std::uint32_t> count = number(text.substr(slash + 1));
    if (!index || !count || *count == 0 || *index >= *count)
        return std::nullopt;
    return shard_spec{*index, *count};
}

std::uint64_t fnv1a_64(std::string_view text) noexcept {
    std::uint64_t h = 14695981039346656037ull; // FNV offset basis
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull; // FNV prime
    }
    return h;
}

std::uint32_t shard_of(std::string_view host, std::uint32_t count) {
    if (count == 0)
        throw std::invalid_argument("shard_of: count must be at least 1");
    return static_cast<std::uint32_t>(fnv1a_64(host) % count);
}

namespace {

// The family a group's hosts must have: its network's, or (network ip) its
// source address's; nullopt = any.
std::optional<ie::ip_family> wanted_family(const target_group& group) {
    if (group.network == network_kind::ip4)
        return ie::ip_family::v4;
    if (group.network == network_kind::ip6)
        return ie::ip_family::v6;
    if (const auto source = ie::ip_address::try_parse(group.source))
        return source->family();
    return std::nullopt;
}

network_kind as_network(std::optional<ie::ip_family> family) {
    if (!family)
        return network_kind::ip;
    return *family == ie::ip_family::v4 ? network_kind::ip4 : network_kind::ip6;
}

// The address a host is pinged at, as config.hpp's network_kind says.
std::optional<ie::ip_address> pick(const std::vector<ie::ip_address>& addresses,
                                   std::optional<ie::ip_family> family) {
    const ie::ip_family preferred = family.value_or(ie::ip_family::v4);
    for (const ie::ip_address& a : addresses)
        if (a.family() == preferred)
            return a;
    if (!family && !addresses.empty())
        return addresses.front();
    return std::nullopt;
}

} // namespace

expanded_targets expand(const exporter_config& config, const shard_spec& shard,
                        const resolve_function& resolve) {
    expanded_targets out;
    std::set<target_spec::identity> kept;
    std::set<std::string> unresolved;
    std::map<std::pair<std::string, network_kind>, std::vector<ie::ip_address>> answers;
    for (const target_group& group : config.groups) {
        const std::optional<ie::ip_family> family = wanted_family(group);
        for (const std::string& host : group.hosts) {
            if (shard.count > 1 && shard_of(host, shard.count) != shard.index)
                continue;
            std::optional<ie::ip_address> ip = ie::ip_address::try_parse(host);
            if (ip && family && ip->family() != *family)
                ip.reset(); // a literal of the other family
            else if (!ip) {
                const auto key = std::make_pair(host, as_network(family));
                auto it = answers.find(key);
                if (it == answers.end())
                    it = answers.emplace(key, resolve(host, key.second)).first;
                ip = pick(it->second, family);
            }
            if (!ip) {
                if (unresolved.insert(host).second)
                    out.unresolved.push_back(host);
                continue;
            }
            target_spec spec{host,           *ip,         group.source, group.tos, group.size,
                             group.interval, group.labels};
            if (kept.insert(spec.key()).second)
                out.targets.push_back(std::move(spec));
        }
    }
    return out;
}

expanded_targets keep_unresolved(const std::vector<target_spec>& previous, expanded_targets fresh) {
    const std::set<std::string> failed(fresh.unresolved.begin(), fresh.unresolved.end());
    std::set<target_spec::identity> present;
    for (const target_spec& t : fresh.targets)
        present.insert(t.key());
    for (const target_spec& t : previous)
        if (failed.contains(t.host) && present.insert(t.key()).second)
            fresh.targets.push_back(t);
    return fresh;
}

} // namespace icmpengine_exporter
