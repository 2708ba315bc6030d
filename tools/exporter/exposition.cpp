// SPDX-License-Identifier: MIT
#include "exposition.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace icmpengine_exporter {

namespace {

std::string_view kind_name(exposition::kind k) {
    switch (k) {
    case exposition::kind::counter:
        return "counter";
    case exposition::kind::gauge:
        return "gauge";
    case exposition::kind::histogram:
        return "histogram";
    }
    return "untyped";
}

// HELP text escapes backslash and newline (not double quotes).
void append_escaped_help(std::string& out, std::string_view help) {
    for (const char c : help) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
}

} // namespace

std::size_t exposition::family(std::string_view name, kind k, std::string_view help) {
    for (std::size_t i = 0; i < m_families.size(); ++i) {
        const family_data& f = m_families[i];
        if (f.name != name)
            continue;
        if (f.k != k || f.help != help)
            throw std::logic_error("exposition: family " + std::string(name) +
                                   " registered twice with different kind or help");
        return i;
    }
    m_families.push_back({std::string(name), k, std::string(help), {}});
    return m_families.size() - 1;
}

void exposition::merge(exposition&& other) {
    for (family_data& f : other.m_families) {
        const std::size_t i = family(f.name, f.k, f.help);
        if (m_families[i].samples.empty())
            m_families[i].samples = std::move(f.samples);
        else
            m_families[i].samples += f.samples;
    }
    other.m_families.clear();
}

void exposition::write(std::string& out) const {
    for (const family_data& f : m_families) {
        if (f.samples.empty())
            continue;
        append_family_head(out, f.name, f.k, f.help);
        out += f.samples;
    }
}

std::string exposition::text() const {
    std::string out;
    std::size_t size = 0;
    for (const family_data& f : m_families)
        size += f.samples.size() + f.name.size() * 2 + f.help.size() + 32;
    out.reserve(size);
    write(out);
    return out;
}

void append_family_head(std::string& out, std::string_view name, exposition::kind k,
                        std::string_view help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    append_escaped_help(out, help);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += kind_name(k);
    out += '\n';
}

void append_escaped_label_value(std::string& out, std::string_view value) {
    for (const char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
}

void append_label_set(std::string& out,
                      const std::vector<std::pair<std::string_view, std::string_view>>& labels) {
    if (labels.empty())
        return;
    out += '{';
    bool first = true;
    for (const auto& [name, value] : labels) {
        if (!first)
            out += ',';
        first = false;
        out += name;
        out += "=\"";
        append_escaped_label_value(out, value);
        out += '"';
    }
    out += '}';
}

void append_value(std::string& out, std::uint64_t value) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, r.ptr);
}

void append_value(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
        return;
    }
    if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, r.ptr);
}

void append_sample(std::string& out, std::string_view name, std::string_view label_set,
                   double value) {
    out += name;
    out += label_set;
    out += ' ';
    append_value(out, value);
    out += '\n';
}

void append_sample(std::string& out, std::string_view name, std::string_view label_set,
                   std::uint64_t value) {
    out += name;
    out += label_set;
    out += ' ';
    append_value(out, value);
    out += '\n';
}

} // namespace icmpengine_exporter
