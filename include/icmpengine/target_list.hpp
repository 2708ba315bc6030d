// SPDX-License-Identifier: MIT
// icmpengine::target_list: the addresses to ping, from addresses, CIDR prefixes,
// ranges, host names and target files (what fping takes on its command line,
// with -g and with -f).
#pragma once

#include <icmpengine/export.hpp>
#include <icmpengine/ip_address.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace icmpengine {

/// Which address families a target list takes (fping -4 / -6).
enum class family_filter : std::uint8_t {
    any, ///< IPv4 and IPv6
    v4,  ///< IPv4 only
    v6,  ///< IPv6 only
};

/// What a resolver found for one host name.
struct resolution {
    /// The addresses, in the resolver's order of preference; empty on failure.
    std::vector<ip_address> addresses;
    /// Why there are none, for a person to read (the gai_strerror(3) text
    /// for getaddrinfo); empty on success.
    std::string error;
};

/// Resolves a host name to addresses of the families `filter` allows. A
/// resolver reports failure in resolution::error rather than by throwing.
using resolver = std::function<resolution(const std::string& name, family_filter filter)>;

/// The default resolver: getaddrinfo(3) with ai_family AF_INET, AF_INET6 or
/// AF_UNSPEC after `filter`, without AI_ADDRCONFIG (which would hide ::1 and
/// 127.0.0.1 on a host whose only interface is loopback). Duplicate addresses
/// in the answer are dropped. Blocks while the name is looked up.
ICMPENGINE_API resolution resolve_host_name(const std::string& name, family_filter filter);

/// One address to ping.
struct target {
    ip_address address;
    /// The text the target was given as for add_name() / add_stream(): the
    /// host name, or the address literal as typed ("fe80::1%eth0"). Empty for
    /// add_address(), add_cidr() and add_range(), whose targets are named by
    /// their address.
    std::string name;

    friend bool operator==(const target&, const target&) = default;
};

/// A name that gave no target. Failures do not stop the list from being built.
struct target_failure {
    /// The name as given.
    std::string name;
    /// Why: the resolver's error (gai_strerror text for getaddrinfo), or why
    /// the text is not usable.
    std::string reason;
    /// 1-based line of the stream for add_stream(); 0 otherwise.
    std::size_t line = 0;

    friend bool operator==(const target_failure&, const target_failure&) = default;
};

/// Default for target_list_options::cap: 2^24 addresses, a /8 of IPv4.
inline constexpr std::uint64_t default_target_cap = std::uint64_t{1} << 24;

struct target_list_options {
    /// Families to take. Addresses, prefixes and ranges of another family
    /// are rejected (std::invalid_argument); names resolve only within it.
    family_filter family = family_filter::any;
    /// The most addresses one add_cidr() or add_range() may expand to (at
    /// least 1). Catches typos such as /8 for /28 or an IPv6 /64 before they
    /// allocate gigabytes.
    std::uint64_t cap = default_target_cap;
    /// Add every address a name resolves to (fping -m) instead of the first.
    bool all_addresses = false;
    /// Resolves host names; empty means resolve_host_name (getaddrinfo).
    /// Tests inject a fake here.
    resolver resolve;
};

/// Builds a list of targets, without duplicates, in first-seen order: an
/// address already in the list is not added again, and keeps the name it
/// was first added with.
///
///     icmpengine::target_list list({.family = icmpengine::family_filter::v4});
///     list.add_cidr("198.18.0.0/30");      // 198.18.0.1, 198.18.0.2
///     list.add_range("192.0.2.10", "192.0.2.12");
///     list.add_name("localhost");          // getaddrinfo
///     std::ifstream file("targets.txt");
///     list.add_stream(file);               // one target per line, # comments
///     for (const auto& f : list.failures())
///         std::cerr << f.name << ": " << f.reason << "\n";
///
/// Programmer and command-line errors (malformed prefixes and ranges, an
/// address of a family the filter excludes, an expansion above the cap)
/// throw std::invalid_argument naming the text, and leave the list as it
/// was. Names that do not resolve are collected in failures() instead.
class ICMPENGINE_API target_list {
  public:
    /// Throws std::invalid_argument if options.cap is 0.
    explicit target_list(target_list_options options = {});

    /// Adds one address. Returns the number of targets added (0 if it was
    /// already in the list, else 1).
    std::size_t add_address(const ip_address& address);

    /// Adds the hosts of a CIDR prefix, as fping -g does: "198.18.0.0/24"
    /// gives 198.18.0.1 ... 198.18.0.254. For IPv4 prefixes shorter than /31
    /// the network and broadcast addresses are left out; /31 and /32 give
    /// both of their addresses (RFC 3021). IPv6 prefixes give every address:
    /// IPv6 has no broadcast address, and the all-zeros Subnet-Router anycast
    /// address (RFC 4291, 2.6.1) is kept. A scope id carries over to every
    /// address ("fe80::%eth0/126").
    ///
    /// An address with host bits set, "198.18.0.5/30", is taken as the
    /// prefix that contains it (198.18.0.4/30, giving .5 and .6), as fping -g
    /// does: it masks the address with the prefix length.
    ///
    /// Returns the number of targets added. Throws std::invalid_argument
    /// naming the text if it is not ADDRESS/LENGTH with LENGTH in 0..32
    /// (IPv4) or 0..128 (IPv6), if the family is filtered out, or if it
    /// expands to more than options().cap addresses.
    std::size_t add_cidr(std::string_view cidr);

    /// Adds every address from `first` to `last` inclusive (fping -g FIRST
    /// LAST). Both of one family and scope, first <= last. Returns the number
    /// of targets added. Throws std::invalid_argument naming the text for a
    /// malformed address, mixed families or scopes, first > last, a filtered
    /// family, or more than options().cap addresses.
    std::size_t add_range(std::string_view first, std::string_view last);
    std::size_t add_range(const ip_address& first, const ip_address& last);

    /// Adds an address literal or a host name. A host name is resolved with
    /// options().resolve for the allowed families; the first address is added
    /// (all of them with options().all_addresses). A name that does not
    /// resolve, or a literal of a filtered family, becomes a failure(), not
    /// an exception. Returns the number of targets added. Throws
    /// std::invalid_argument for an empty name.
    std::size_t add_name(std::string_view name);

    /// Reads targets from `in`, one address or host name per line, as
    /// add_name(). Blank lines are skipped, and '#' starts a comment that runs
    /// to the end of the line; surrounding white space (and a CR of CRLF
    /// line ends) is ignored. A line with more than one word becomes a
    /// failure. Returns the number of targets added. Throws
    /// std::runtime_error if reading fails (badbit), with what was read
    /// before that already added.
    std::size_t add_stream(std::istream& in);

    /// The targets, in the order they were first added.
    const std::vector<target>& targets() const noexcept { return m_targets; }
    /// Names that gave no target, in the order they were met.
    const std::vector<target_failure>& failures() const noexcept { return m_failures; }
    const target_list_options& options() const noexcept { return m_options; }

    std::size_t size() const noexcept { return m_targets.size(); }
    bool empty() const noexcept { return m_targets.empty(); }

  private:
    bool allows(ip_family family) const noexcept;
    void require_family(const ip_address& address, std::string_view text) const;
    std::size_t add_range_of(const ip_address& first, const ip_address& last,
                             const std::string& what);
    std::size_t add_block(const ip_address& first, std::uint64_t count);
    std::size_t add_name_at(std::string_view name, std::size_t line);
    bool insert(const ip_address& address, std::string_view name);
    void reserve(std::size_t more);
    std::size_t find_slot(const ip_address& address) const noexcept;
    void rehash(std::size_t slot_count);

    target_list_options m_options;
    std::vector<target> m_targets;
    std::vector<target_failure> m_failures;
    /// De-duplication index: an open-addressing hash table (linear probing)
    /// of positions in m_targets plus one, 0 = empty slot. At 16 bytes per
    /// target it costs a fraction of a node-based set for a /8.
    std::vector<std::size_t> m_slots;
};

} // namespace icmpengine
