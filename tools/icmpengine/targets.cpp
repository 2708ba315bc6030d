// SPDX-License-Identifier: MIT
// Target reading, as fping's add_name() and its -f loop (src/fping.c): the
// library's resolver and target_list (for -g) do the work; this file keeps
// fping's rules: every given target counts, the first word of a file's line
// is the target, '#' starts a comment line, and the display name follows
// -A, -n and -d.
#include "targets.hpp"

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <unordered_map>

namespace icmpengine_cli {

namespace {

ie::family_filter family_of(const settings& s) {
    return s.ipv4 ? ie::family_filter::v4 : s.ipv6 ? ie::family_filter::v6 : ie::family_filter::any;
}

/// The reverse-DNS name of `a` (getnameinfo, as fping -n/-d), or its
/// numeric form when there is none; std::nullopt on failure.
std::optional<std::string> reverse_name(const ie::ip_address& a) {
    sockaddr_storage storage{};
    socklen_t length = 0;
    if (a.is_v4()) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(a.v4_value());
        length = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
        sin6->sin6_family = AF_INET6;
        std::memcpy(&sin6->sin6_addr, a.bytes().data(), 16);
        sin6->sin6_scope_id = a.scope_id();
        length = sizeof(sockaddr_in6);
    }
    char name[NI_MAXHOST];
    if (::getnameinfo(reinterpret_cast<sockaddr*>(&storage), length, name, sizeof name, nullptr, 0,
                      0) != 0)
        return std::nullopt;
    return std::string(name);
}

/// Collects the given targets, distinct addresses apart.
class target_builder {
  public:
    explicit target_builder(const settings& s) : m_settings(s) {}

    /// fping's add_name(): a literal or a host name; the first address, or
    /// all of them with -m. A name without an address becomes a failure.
    void add_name(const std::string& name, std::size_t line = 0) {
        if (const auto literal = ie::ip_address::try_parse(name)) {
            if (!allows(*literal)) {
                // getaddrinfo's EAI_ADDRFAMILY, as fping -4 ::1 reports it.
                m_set.failures.push_back({name, ::gai_strerror(EAI_ADDRFAMILY), line});
                return;
            }
            add(name, *literal, true);
            return;
        }
        ie::resolution found = ie::resolve_host_name(name, family_of(m_settings));
        std::erase_if(found.addresses, [this](const ie::ip_address& a) { return !allows(a); });
        if (found.addresses.empty()) {
            m_set.failures.push_back(
                {name, found.error.empty() ? "no address" : std::move(found.error), line});
            return;
        }
        if (!m_settings.all_addresses)
            found.addresses.resize(1);
        for (const ie::ip_address& a : found.addresses)
            add(name, a, false);
    }

    /// A generated address (-g): named by its address, as fping's inet_ntop.
    void add_generated(const ie::ip_address& a) { add(a.to_string(), a, true); }

    target_set take() { return std::move(m_set); }

  private:
    bool allows(const ie::ip_address& a) const {
        return !(m_settings.ipv4 && !a.is_v4()) && !(m_settings.ipv6 && a.is_v4());
    }

    /// fping's printname: -n looks up numeric targets only, -d all; -A
    /// shows the address ("NAME (ADDRESS)" with -n/-d).
    std::string display_name(const std::string& name, const ie::ip_address& a, bool numeric) const {
        std::string shown = name;
        const name_mode mode = m_settings.names;
        if (mode == name_mode::rdns || (mode == name_mode::name && numeric))
            shown = reverse_name(a).value_or(name);
        if (!m_settings.by_address)
            return shown;
        return mode == name_mode::as_given ? a.to_string()
                                           : fmt::format("{} ({})", shown, a.to_string());
    }

    void add(const std::string& name, const ie::ip_address& a, bool numeric) {
        const auto [it, fresh] = m_index.try_emplace(a, m_set.addresses.size());
        std::string shown = display_name(name, a, numeric);
        if (fresh)
            m_set.addresses.push_back(a);
        m_set.given.push_back({std::move(shown), it->second});
    }

    const settings& m_settings;
    target_set m_set;
    std::unordered_map<ie::ip_address, std::size_t> m_index;
};

/// A library message without its "target_list: " prefix.
std::string without_prefix(std::string message) {
    constexpr std::string_view prefix = "target_list: ";
    if (message.starts_with(prefix))
        message.erase(0, prefix.size());
    return message;
}

/// -g: one CIDR prefix or a range FIRST LAST as fping; several prefixes
/// are ours. The library expands them (and checks --max-targets).
void generate_targets(const settings& s, target_builder& out) {
    for (const std::string& t : s.targets)
        if (t.size() > 100) // an address with a scope fits in far less
            throw usage_error(
                fmt::format("-g: '{}' is not an address, prefix or range", printable(t)));
    ie::target_list_options options;
    options.family = family_of(s);
    options.cap = s.max_targets;
    ie::target_list list(std::move(options));
    const bool all_cidr = std::all_of(s.targets.begin(), s.targets.end(), [](const auto& t) {
        return t.find('/') != std::string::npos;
    });
    try {
        if (all_cidr) {
            for (const std::string& t : s.targets)
                list.add_cidr(t);
        } else if (s.targets.size() == 2) {
            list.add_range(s.targets[0], s.targets[1]);
        } else {
            throw usage_error("-g takes one ADDRESS/PREFIX (or several) or a range FIRST LAST");
        }
    } catch (const std::invalid_argument& e) {
        throw usage_error("-g: " + without_prefix(e.what()));
    }
    if (list.size() > s.max_targets)
        throw usage_error(fmt::format("-g: the prefixes expand to {} addresses, more than "
                                      "--max-targets {}",
                                      list.size(), s.max_targets));
    for (const ie::target& t : list.targets())
        out.add_generated(t.address);
}

/// The first word of a line (fping: sscanf "%s"); empty for a blank line.
std::string_view first_word(std::string_view line) {
    constexpr std::string_view space = " \t\n\v\f\r";
    const auto begin = line.find_first_not_of(space);
    if (begin == std::string_view::npos)
        return {};
    const auto end = line.find_first_of(space, begin);
    return line.substr(begin, end == std::string_view::npos ? end : end - begin);
}

/// -f FILE or stdin: the first word of every line that has one, unless it
/// starts with '#'; the rest of the line is ignored (`10.0.0.1 web01`).
void read_file(const std::string& path, target_builder& out) {
    const bool is_stdin = path == "-";
    std::FILE* file = is_stdin ? stdin : std::fopen(path.c_str(), "r");
    if (file == nullptr)
        throw std::system_error(errno, std::generic_category(), printable(path));
    struct owned_file {
        std::FILE* f;
        bool close;
        char* line = nullptr; // getline(3)'s buffer
        std::size_t capacity = 0;
        ~owned_file() {
            std::free(line);
            if (close)
                std::fclose(f);
        }
    } in{file, !is_stdin};
    struct stat st {};
    if (::fstat(::fileno(file), &st) == 0 && S_ISDIR(st.st_mode))
        throw usage_error(printable(path) + ": " + std::generic_category().message(EISDIR));
    std::size_t line = 0;
    for (ssize_t n; (n = ::getline(&in.line, &in.capacity, file)) >= 0;) {
        ++line;
        const std::string_view word = first_word({in.line, static_cast<std::size_t>(n)});
        if (!word.empty() && word.front() != '#')
            out.add_name(std::string(word), line);
    }
    if (std::ferror(file))
        throw std::system_error(errno, std::generic_category(),
                                fmt::format("{}: reading line {}", printable(path), line + 1));
}

/// fping's rules for where the targets come from.
void check_sources(settings& s) {
    if (s.generate && !s.file.empty())
        throw usage_error("-g and -f cannot be combined");
    if (!s.targets.empty() && !s.file.empty())
        throw usage_error("targets on the command line and -f cannot be combined");
    if (s.generate && s.targets.empty())
        throw usage_error("-g needs ADDRESS/PREFIX or FIRST LAST");
    if (s.targets.empty() && s.file.empty()) {
        if (::isatty(STDIN_FILENO))
            throw usage_error("no targets: give addresses or names, -f FILE, or -g");
        s.file = "-"; // fping reads targets from stdin when none are given
    }
}

} // namespace

target_set read_targets(settings& s) {
    check_sources(s);
    target_builder out(s);
    if (s.generate) {
        generate_targets(s, out);
    } else if (!s.file.empty()) {
        read_file(s.file, out);
    } else {
        for (const std::string& t : s.targets)
            out.add_name(t);
    }
    return out.take();
}

} // namespace icmpengine_cli
