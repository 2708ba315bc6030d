// SPDX-License-Identifier: MIT
// smokeping_prober's configuration file, read with yaml-cpp 0.7
// (config.hpp says what is accepted). Every value is checked where it is
// read, so that an error names the line of the value (yaml-cpp's marks are
// 0-based; config_error's lines 1-based, 0 = the file as a whole).
#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace icmpengine_exporter {

config_error::config_error(std::string file, int line, const std::string& reason)
    : std::runtime_error(line > 0 ? fmt::format("{}:{}: {}", file, line, reason)
                                  : fmt::format("{}: {}", file, reason)),
      m_file(std::move(file)), m_line(line) {}

namespace {

int line_of(const YAML::Mark& mark) {
    return mark.line >= 0 ? mark.line + 1 : 0;
}
int line_of(const YAML::Node& node) {
    return line_of(node.Mark());
}

// Go's strconv.ParseInt(text, 0, 64) after YAML 1.1's "_" removal, as
// smokeping_prober's YAML decoder reads an integer: 56, +56, 0x38, 0o70,
// 070 (octal), 0b111000. Negative numbers are not needed here (every
// integer key is unsigned): they do not parse.
std::optional<std::uint64_t> parse_unsigned(std::string text) {
    std::erase(text, '_');
    std::string_view s = text;
    if (!s.empty() && s.front() == '+')
        s.remove_prefix(1);
    unsigned base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        base = 16, s.remove_prefix(2);
    else if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O'))
        base = 8, s.remove_prefix(2);
    else if (s.size() > 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B'))
        base = 2, s.remove_prefix(2);
    else if (s.size() > 1 && s[0] == '0')
        base = 8, s.remove_prefix(1);
    if (s.empty())
        return std::nullopt;
    std::uint64_t value = 0;
    for (char c : s) {
        unsigned digit = base;
        if (c >= '0' && c <= '9')
            digit = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = static_cast<unsigned>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = static_cast<unsigned>(c - 'A' + 10);
        if (digit >= base || value > (UINT64_MAX - digit) / base)
            return std::nullopt;
        value = value * base + digit;
    }
    return value;
}

bool valid_label_name(std::string_view name) {
    auto alpha = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    };
    if (name.empty() || !alpha(name.front()))
        return false;
    return std::all_of(name.begin(), name.end(),
                       [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); });
}

const char* kind_name(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Map:
        return "a mapping";
    case YAML::NodeType::Null:
        return "nothing";
    default:
        return "a single value";
    }
}

// Reads one file's nodes; every failure is a config_error at the node's line.
class reader {
  public:
    explicit reader(const std::string& file) : m_file(file) {}

    [[noreturn]] void fail(const YAML::Node& at, const std::string& reason) const {
        throw config_error(m_file, line_of(at), reason);
    }

    // One key of a mapping: its text, its node (errors about the key, or
    // about a value that is missing, name the key's line) and its value.
    struct entry {
        std::string key;
        YAML::Node key_node;
        YAML::Node value;
    };

    // The entries of a mapping in file order; a key that is not a single
    // value, or given twice, is an error.
    std::vector<entry> entries(const YAML::Node& map, std::string_view what) const {
        std::vector<entry> out;
        std::map<std::string, int> first_line;
        for (auto it = map.begin(); it != map.end(); ++it) {
            if (!it->first.IsScalar())
                fail(it->first, fmt::format("{}: a key must be a single value, not {}", what,
                                            kind_name(it->first)));
            std::string key = it->first.Scalar();
            auto [pos, fresh] = first_line.emplace(key, line_of(it->first));
            if (!fresh)
                fail(it->first, fmt::format("{}: '{}' is given twice (first on line {})", what, key,
                                            pos->second));
            out.push_back({std::move(key), it->first, it->second});
        }
        return out;
    }

    // The text of a key's value, which must be a single value.
    std::string scalar(const YAML::Node& value, std::string_view key) const {
        if (!value.IsScalar())
            fail(value, fmt::format("{}: expected a single value, not {}", key, kind_name(value)));
        return value.Scalar();
    }

    std::uint64_t integer(const YAML::Node& value, std::string_view key, std::uint64_t min,
                          std::uint64_t max) const {
        const std::string text = scalar(value, key);
        const std::optional<std::uint64_t> n = parse_unsigned(text);
        if (!n)
            fail(value, fmt::format("{}: '{}' is not a whole number", key, text));
        if (*n < min || *n > max)
            fail(value, fmt::format("{}: '{}' is out of range ({}..{})", key, text, min, max));
        return *n;
    }

    std::chrono::nanoseconds interval(const YAML::Node& value) const {
        const std::string text = scalar(value, "interval");
        const std::optional<std::chrono::nanoseconds> d = parse_go_duration(text);
        if (!d)
            fail(value, fmt::format("interval: '{}' is not a duration (e.g. 1s, 500ms)", text));
        if (d->count() <= 0)
            fail(value, fmt::format("interval: '{}' must be more than 0", text));
        return *d;
    }

    void hosts(const YAML::Node& value, std::vector<std::string>& out) const {
        if (!value.IsSequence())
            fail(value, fmt::format("hosts: expected a list of hosts, not {}", kind_name(value)));
        if (value.size() == 0)
            fail(value, "hosts: the list is empty");
        std::map<std::string, int> first_line;
        for (const YAML::Node& item : value) {
            std::string host = scalar(item, "hosts");
            if (host.empty())
                fail(item, "hosts: a host is empty");
            auto [pos, fresh] = first_line.emplace(host, line_of(item));
            if (!fresh)
                fail(item, fmt::format("hosts: '{}' is listed twice in this group (first on "
                                       "line {})",
                                       host, pos->second));
            out.push_back(std::move(host));
        }
    }

    label_list labels(const YAML::Node& value) const {
        if (!value.IsMap())
            fail(value, fmt::format("labels: expected a mapping of label names to values, not {}",
                                    kind_name(value)));
        label_list out;
        for (auto& [name, at, v] : entries(value, "labels")) {
            if (!valid_label_name(name) || name.starts_with("__"))
                fail(at, fmt::format("labels: '{}' is not a valid label name "
                                     "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                                     name));
            if (name == "ip" || name == "host" || name == "source" || name == "tos")
                fail(at, fmt::format("labels: '{}' is set by the exporter itself; choose another "
                                     "name",
                                     name));
            if (v.IsNull())
                fail(at, fmt::format("labels: '{}' has no value", name));
            out.emplace_back(name, scalar(v, fmt::format("labels: '{}'", name)));
        }
        std::sort(out.begin(), out.end());
        return out;
    }

    target_group group(const YAML::Node& node, const group_defaults& defaults) const;

  private:
    const std::string& m_file;
};

// The keys a group gave, with their values' nodes: checks that involve
// two keys run once the whole group is read.
using given_keys = std::map<std::string, YAML::Node>;

void check_group(const reader& r, const YAML::Node& node, const given_keys& given,
                 const target_group& g) {
    const auto at = [&](const char* key) -> const YAML::Node* {
        const auto it = given.find(key);
        return it == given.end() ? nullptr : &it->second;
    };
    if (at("host") && at("hosts"))
        r.fail(*at("host"), "host: give either host or hosts, not both");
    if (!at("host") && !at("hosts"))
        r.fail(node, "target group: 'hosts' is missing (a list of hosts to ping)");
    if (at("tos") && at("dscp"))
        r.fail(*at("dscp"),
               fmt::format("dscp: cannot be given with tos (line {}); give one of them",
                           line_of(*at("tos"))));
    if (!at("source"))
        return;
    const std::optional<ie::ip_address> source = ie::ip_address::try_parse(g.source);
    if (!source)
        r.fail(*at("source"), fmt::format("source: '{}' is not an IP address", g.source));
    if ((g.network == network_kind::ip4 && !source->is_v4()) ||
        (g.network == network_kind::ip6 && !source->is_v6()))
        r.fail(*at("source"), fmt::format("source: '{}' is not an {} address, as network: {} asks",
                                          g.source, source->is_v4() ? "IPv6" : "IPv4",
                                          g.network == network_kind::ip4 ? "ip4" : "ip6"));
}

target_group reader::group(const YAML::Node& node, const group_defaults& defaults) const {
    if (!node.IsMap())
        fail(node, fmt::format("targets: each entry must be a mapping (hosts:, interval:, ...), "
                               "not {}",
                               kind_name(node)));
    target_group g;
    g.interval = defaults.interval;
    g.size = defaults.size;
    g.line = line_of(node);
    given_keys given;
    for (auto& [key, at, value] : entries(node, "target group")) {
        if (value.IsNull())
            fail(at, fmt::format("{}: no value given", key));
        given.emplace(key, value);
        if (key == "hosts")
            hosts(value, g.hosts);
        else if (key == "host") {
            std::string host = scalar(value, key);
            if (host.empty())
                fail(value, "host: the host is empty");
            g.hosts.push_back(std::move(host));
        } else if (key == "interval")
            g.interval = interval(value);
        else if (key == "network") {
            const std::string text = scalar(value, key);
            if (text == "ip")
                g.network = network_kind::ip;
            else if (text == "ip4")
                g.network = network_kind::ip4;
            else if (text == "ip6")
                g.network = network_kind::ip6;
            else
                fail(value, fmt::format("network: '{}' is not one of ip, ip4, ip6", text));
        } else if (key == "protocol") {
            g.protocol = scalar(value, key);
            if (g.protocol != "icmp" && g.protocol != "udp")
                fail(value, fmt::format("protocol: '{}' is not one of icmp, udp", g.protocol));
        } else if (key == "size")
            g.size = static_cast<std::uint32_t>(integer(value, key, 24, 65507));
        else if (key == "source")
            g.source = scalar(value, key);
        else if (key == "tos")
            g.tos = static_cast<std::uint8_t>(integer(value, key, 0, 255));
        else if (key == "dscp")
            g.tos = static_cast<std::uint8_t>(integer(value, key, 0, 63) << 2);
        else if (key == "labels")
            g.labels = labels(value);
        else
            fail(at, fmt::format("target group: unknown key '{}' (known: hosts, host, "
                                 "interval, network, protocol, size, source, tos, dscp, "
                                 "labels)",
                                 key));
    }
    check_group(*this, node, given, g);
    return g;
}

// The document; a syntax error is a config_error at the line yaml-cpp names.
YAML::Node load_yaml(std::string_view yaml, const std::string& file) {
    try {
        return YAML::Load(std::string(yaml));
    } catch (const YAML::ParserException& e) {
        throw config_error(file, line_of(e.mark), "YAML syntax: " + e.msg);
    }
}

} // namespace

exporter_config parse_config(std::string_view yaml, const std::string& file,
                             const group_defaults& defaults) {
    const YAML::Node root = load_yaml(yaml, file);
    const reader r(file);
    exporter_config config;
    if (root.IsNull())
        return config;
    if (!root.IsMap())
        r.fail(root, fmt::format("expected a mapping with a 'targets:' list at the top, not {}",
                                 kind_name(root)));
    for (auto& [key, at, value] : r.entries(root, "top level")) {
        if (key != "targets")
            r.fail(at, fmt::format("top level: unknown key '{}' (known: targets)", key));
        if (value.IsNull())
            continue;
        if (!value.IsSequence())
            r.fail(value, fmt::format("targets: expected a list of target groups, not {}",
                                      kind_name(value)));
        for (const YAML::Node& group : value)
            config.groups.push_back(r.group(group, defaults));
    }
    return config;
}

exporter_config load_config(const std::string& path, const group_defaults& defaults) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw config_error(path, 0, "cannot read: it is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw config_error(path, 0, fmt::format("cannot read: {}", std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad())
        throw config_error(path, 0, fmt::format("cannot read: {}", std::strerror(errno)));
    return parse_config(text.str(), path, defaults);
}

} // namespace icmpengine_exporter
