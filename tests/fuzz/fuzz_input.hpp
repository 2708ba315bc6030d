// SPDX-License-Identifier: MIT
// What every fuzz target in tests/fuzz shares: the libFuzzer entry point, a
// reader that turns the input into parameters, and the invariant check.
//
// The targets are built twice (tests/fuzz/meson.build): with clang's
// -fsanitize=fuzzer, where libFuzzer supplies main(), and everywhere as a
// replay test (replay_main.cpp) that runs the committed corpus and the
// regression inputs through the same function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace icmpengine::fuzz {

/// Reports a broken invariant and aborts: libFuzzer catches SIGABRT and
/// saves the input as a crash artifact; the replay test fails.
[[noreturn]] inline void fail(const char* what, const char* file, int line) noexcept {
    std::fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
    std::abort();
}

#define FUZZ_CHECK(cond)                                                                           \
    ((cond) ? static_cast<void>(0) : ::icmpengine::fuzz::fail(#cond, __FILE__, __LINE__))

/// Reads parameters from the front of a fuzz input. Reads past the end give
/// zeros, so that every input, however short, is a valid test case and
/// mutations of one byte change one parameter.
class fuzz_input {
  public:
    explicit fuzz_input(std::span<const std::byte> data) noexcept : m_data(data) {}

    std::uint8_t u8() noexcept {
        if (m_pos >= m_data.size())
            return 0;
        return std::to_integer<std::uint8_t>(m_data[m_pos++]);
    }
    std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(u8() << 8 | u8()); }
    std::uint32_t u32() noexcept { return std::uint32_t{u16()} << 16 | u16(); }
    std::uint64_t u64() noexcept { return std::uint64_t{u32()} << 32 | u32(); }

    /// Up to `n` bytes as they are (fewer at the end of the input).
    std::span<const std::byte> take(std::size_t n) noexcept {
        const std::size_t k = n < remaining() ? n : remaining();
        const auto out = m_data.subspan(m_pos, k);
        m_pos += k;
        return out;
    }
    /// Everything not read yet.
    std::span<const std::byte> rest() noexcept { return take(remaining()); }

    std::size_t remaining() const noexcept { return m_data.size() - m_pos; }
    bool empty() const noexcept { return m_pos >= m_data.size(); }

  private:
    std::span<const std::byte> m_data;
    std::size_t m_pos = 0;
};

} // namespace icmpengine::fuzz
