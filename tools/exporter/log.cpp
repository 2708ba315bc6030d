// SPDX-License-Identifier: MIT
#include "log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace icmpengine_exporter {

namespace {

std::atomic<int> threshold{static_cast<int>(log_level::info)};
std::atomic<bool> json{false};
std::mutex write_mutex;

std::string_view level_name(log_level l) {
    switch (l) {
    case log_level::debug:
        return "debug";
    case log_level::info:
        return "info";
    case log_level::warn:
        return "warn";
    case log_level::error:
        return "error";
    }
    return "info";
}

std::string timestamp() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms));
    return buf;
}

/// logfmt quotes a value with spaces, quotes or '='; JSON always quotes.
void append_value(std::string& out, std::string_view v, bool as_json) {
    bool quote = as_json || v.empty();
    for (const char c : v)
        quote = quote || c == ' ' || c == '"' || c == '=' || c == '\\' ||
                static_cast<unsigned char>(c) < 0x20;
    if (!quote) {
        out += v;
        return;
    }
    out += '"';
    for (const char c : v) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
            out += buf;
        } else {
            out += c;
        }
    }
    out += '"';
}

void append_field(std::string& out, std::string_view key, std::string_view value, bool as_json,
                  bool first) {
    if (as_json) {
        out += first ? "" : ",";
        out += '"';
        out += key;
        out += "\":";
    } else {
        out += first ? "" : " ";
        out += key;
        out += '=';
    }
    append_value(out, value, as_json);
}

} // namespace

void configure_log(std::string_view level, std::string_view format) {
    log_level l = log_level::info;
    if (level == "debug")
        l = log_level::debug;
    else if (level == "warn")
        l = log_level::warn;
    else if (level == "error")
        l = log_level::error;
    threshold = static_cast<int>(l);
    json = format == "json";
}

void log(log_level level, std::string_view message,
         std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
    if (static_cast<int>(level) < threshold.load())
        return;
    const bool as_json = json.load();
    std::string line = as_json ? "{" : "";
    append_field(line, "ts", timestamp(), as_json, true);
    append_field(line, "level", level_name(level), as_json, false);
    append_field(line, "msg", message, as_json, false);
    for (const auto& [k, v] : fields)
        append_field(line, k, v, as_json, false);
    line += as_json ? "}\n" : "\n";
    const std::lock_guard lock(write_mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
}

} // namespace icmpengine_exporter
