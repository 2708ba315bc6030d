// SPDX-License-Identifier: MIT
// A strict reader of the Prometheus text exposition format (0.0.4) for the
// exporter's tests: every line must be a `# HELP`, a `# TYPE` or a sample
// of the family typed just before; label values are unescaped; a page
// that breaks a rule throws std::runtime_error naming the line. Written
// from the format's description (prometheus.io, "Exposition formats"),
// apart from the exporter's own code, so that it checks it.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace icmpengine::testing {

struct exposition_sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

struct exposition_page {
    std::vector<exposition_sample> samples;
    std::map<std::string, std::string> types; ///< family -> counter / gauge / histogram
    std::map<std::string, std::string> helps;

    /// Samples named `name` whose labels include every pair of `match`.
    std::vector<const exposition_sample*>
    find(std::string_view name, const std::map<std::string, std::string>& match = {}) const {
        std::vector<const exposition_sample*> out;
        for (const exposition_sample& s : samples) {
            if (s.name != name)
                continue;
            bool all = true;
            for (const auto& [k, v] : match) {
                const auto it = s.labels.find(k);
                all = all && it != s.labels.end() && it->second == v;
            }
            if (all)
                out.push_back(&s);
        }
        return out;
    }
    /// The value of the one sample `find` names; throws if none or several.
    double value(std::string_view name,
                 const std::map<std::string, std::string>& match = {}) const {
        const auto found = find(name, match);
        if (found.size() != 1)
            throw std::runtime_error("exposition: " + std::to_string(found.size()) +
                                     " samples named " + std::string(name));
        return found.front()->value;
    }
};

namespace detail {

inline bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
inline bool is_name_char(char c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}

[[noreturn]] inline void reject(std::size_t line, std::string_view text, const std::string& why) {
    throw std::runtime_error("exposition line " + std::to_string(line) + ": " + why + ": '" +
                             std::string(text) + "'");
}

inline std::string read_name(std::string_view& s) {
    std::size_t n = 0;
    while (n < s.size() && (n == 0 ? is_name_start(s[n]) : is_name_char(s[n])))
        ++n;
    std::string name(s.substr(0, n));
    s.remove_prefix(n);
    return name;
}

inline std::optional<double> read_value(std::string_view s) {
    if (s == "+Inf")
        return HUGE_VAL;
    if (s == "-Inf")
        return -HUGE_VAL;
    if (s == "NaN")
        return NAN;
    if (s.empty())
        return std::nullopt;
    const std::string text(s);
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size())
        return std::nullopt;
    return v;
}

/// `{a="x",b="y"}` (the braces included); false if malformed.
inline bool read_labels(std::string_view& s, std::map<std::string, std::string>& labels) {
    s.remove_prefix(1); // '{'
    while (!s.empty() && s.front() != '}') {
        const std::string name = read_name(s);
        if (name.empty() || s.size() < 2 || s[0] != '=' || s[1] != '"')
            return false;
        s.remove_prefix(2);
        std::string value;
        while (!s.empty() && s.front() != '"') {
            if (s.front() == '\\') {
                if (s.size() < 2)
                    return false;
                const char e = s[1];
                if (e == 'n')
                    value += '\n';
                else if (e == '\\' || e == '"')
                    value += e;
                else
                    return false;
                s.remove_prefix(2);
            } else {
                value += s.front();
                s.remove_prefix(1);
            }
        }
        if (s.empty() || !labels.emplace(name, value).second)
            return false;
        s.remove_prefix(1); // closing quote
        if (!s.empty() && s.front() == ',')
            s.remove_prefix(1);
    }
    if (s.empty())
        return false;
    s.remove_prefix(1); // '}'
    return true;
}

/// The family a sample belongs to: histograms own name_bucket/_sum/_count.
inline std::string family_of(const std::string& name,
                             const std::map<std::string, std::string>& types) {
    for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (name.size() > suffix.size() &&
            std::string_view(name).substr(name.size() - suffix.size()) == suffix) {
            const std::string base = name.substr(0, name.size() - suffix.size());
            const auto it = types.find(base);
            if (it != types.end() && it->second == "histogram")
                return base;
        }
    }
    return name;
}

} // namespace detail

/// Parses and checks a whole page.
inline exposition_page parse_exposition(std::string_view text) {
    exposition_page page;
    std::string current; // the family typed last
    std::set<std::string> finished;
    std::size_t number = 0;
    if (!text.empty() && text.back() != '\n')
        throw std::runtime_error("exposition: the page does not end with a newline");
    while (!text.empty()) {
        const std::size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text.remove_prefix(eol + 1);
        ++number;
        const std::string_view whole = line;
        if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
            const bool help = line[2] == 'H';
            line.remove_prefix(7);
            const std::string name = detail::read_name(line);
            if (name.empty() || line.empty() || line.front() != ' ')
                detail::reject(number, whole, "bad HELP/TYPE line");
            line.remove_prefix(1);
            if (help) {
                if (!page.helps.emplace(name, std::string(line)).second)
                    detail::reject(number, whole, "second HELP for a family");
                continue;
            }
            if (line != "counter" && line != "gauge" && line != "histogram" && line != "summary" &&
                line != "untyped")
                detail::reject(number, whole, "unknown type");
            if (!page.types.emplace(name, std::string(line)).second || finished.count(name))
                detail::reject(number, whole, "second TYPE for a family");
            if (!current.empty())
                finished.insert(current);
            current = name;
            continue;
        }
        if (line.empty() || line.front() == '#')
            detail::reject(number, whole, "empty line or stray comment");
        exposition_sample s;
        s.name = detail::read_name(line);
        if (s.name.empty())
            detail::reject(number, whole, "bad metric name");
        if (!line.empty() && line.front() == '{' && !detail::read_labels(line, s.labels))
            detail::reject(number, whole, "bad label set");
        if (line.empty() || line.front() != ' ')
            detail::reject(number, whole, "no space before the value");
        line.remove_prefix(1);
        const std::optional<double> v = detail::read_value(line);
        if (!v)
            detail::reject(number, whole, "bad value (or a timestamp)");
        s.value = *v;
        if (detail::family_of(s.name, page.types) != current)
            detail::reject(number, whole, "sample outside its family's block");
        page.samples.push_back(std::move(s));
    }
    return page;
}

} // namespace icmpengine::testing
