// SPDX-License-Identifier: MIT
// The Prometheus text exposition format (0.0.4), written by hand (Debian
// has no prometheus-cpp): families in order of registration, each with its
// HELP and TYPE once and its samples together, label values escaped.
// Validated in tests by `promtool check metrics`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace icmpengine_exporter {

class exposition {
  public:
    enum class kind { counter, gauge, histogram };

    /// The index of the family `name`, registering it on first use. The
    /// same name with another kind or help throws std::logic_error.
    std::size_t family(std::string_view name, kind k, std::string_view help);

    /// Where a family's sample lines go: whole lines, each ending in '\n',
    /// written with the helpers below (or precomputed fragments of them).
    std::string& samples(std::size_t family_index) { return m_families[family_index].samples; }

    /// Appends `other`'s samples to the families of the same name (others
    /// are added at the end): how the outputs of several engines' threads
    /// become one page.
    void merge(exposition&& other);

    /// The page. Families without samples are left out (as client_golang
    /// leaves out an empty vector).
    std::string text() const;
    /// Appends the page to `out`.
    void write(std::string& out) const;

  private:
    struct family_data {
        std::string name;
        kind k;
        std::string help;
        std::string samples;
    };
    std::vector<family_data> m_families;
};

/// Appends a family's head as text() writes it: `# HELP name help` (help
/// escaped) and `# TYPE name kind`, each line ending in '\n'.
void append_family_head(std::string& out, std::string_view name, exposition::kind k,
                        std::string_view help);

/// Appends `{name="value",...}` with each value escaped (backslash, double
/// quote, newline). Nothing for an empty list.
void append_label_set(std::string& out,
                      const std::vector<std::pair<std::string_view, std::string_view>>& labels);
/// Appends one label value, escaped, without quotes.
void append_escaped_label_value(std::string& out, std::string_view value);
/// Appends a sample value: integers exactly, other doubles in the shortest
/// form that reads back the same (std::to_chars), +Inf/-Inf/NaN as
/// Prometheus spells them.
void append_value(std::string& out, double value);
void append_value(std::string& out, std::uint64_t value);
/// Appends `name` + label set (already rendered, may be empty) + ' ' +
/// value + '\n'.
void append_sample(std::string& out, std::string_view name, std::string_view label_set,
                   double value);
void append_sample(std::string& out, std::string_view name, std::string_view label_set,
                   std::uint64_t value);

} // namespace icmpengine_exporter
