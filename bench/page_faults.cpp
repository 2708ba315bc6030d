// SPDX-License-Identifier: MIT
// bench_page_faults: what a first write to fresh anonymous memory costs on
// this machine, four ways (bench/README.md, "Page faults"):
//
//   4 KiB pages    mmap, then write one byte per page (a fault per page)
//   huge pages     mmap 2 MiB-aligned with MADV_HUGEPAGE, then write
//   MAP_POPULATE   mmap(MAP_POPULATE): the kernel fills the page tables
//   POPULATE_WRITE mmap, madvise(MADV_POPULATE_WRITE), as lib/huge_pages does
//
//     bench_page_faults [--mb 16] [--rounds 3]
//
// Each round maps, writes and unmaps every kind once, in turn, and prints
// milliseconds per megabyte, all of it and (in brackets) the write alone. It
// sends nothing. On a paravirtualised VM the per-page fault dominates, and
// where the hypervisor keeps shadow page tables (as on this project's VM)
// even a populated 4 KiB page costs microseconds at its first write; on
// bare metal the four are closer.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <sys/mman.h>

namespace {

constexpr std::size_t page = 4096;
constexpr std::size_t huge = 2 * 1024 * 1024;

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

std::byte* map(std::size_t size, int extra_flags) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    if (p == MAP_FAILED) {
        std::perror("mmap");
        std::exit(1);
    }
    return static_cast<std::byte*>(p);
}

void write_pages(std::byte* p, std::size_t size) {
    for (std::size_t i = 0; i < size; i += page)
        static_cast<volatile std::byte*>(p)[i] = std::byte{1};
}

struct timing {
    double total_ms; ///< map, prepare and write
    double write_ms; ///< the write alone
};

/// Milliseconds to map `size` bytes one way and write a byte in each page.
timing one(std::string_view kind, std::size_t size) {
    const auto t0 = clock_type::now();
    std::byte* base = nullptr;
    std::byte* p = nullptr;
    std::size_t mapped = size;
    if (kind == "4 KiB pages") {
        p = base = map(size, 0);
        (void)::madvise(p, size, MADV_NOHUGEPAGE);
    } else if (kind == "huge pages") {
        mapped = size + huge;
        base = map(mapped, 0);
        const auto at = reinterpret_cast<std::uintptr_t>(base);
        p = base + ((at + huge - 1) / huge * huge - at);
        (void)::madvise(p, size, MADV_HUGEPAGE);
    } else if (kind == "MAP_POPULATE") {
        p = base = map(size, MAP_POPULATE);
    } else {
        p = base = map(size, 0);
        if (::madvise(p, size, MADV_POPULATE_WRITE) != 0)
            std::perror("madvise(MADV_POPULATE_WRITE)");
    }
    const auto t1 = clock_type::now();
    write_pages(p, size);
    const timing t{ms_since(t0), ms_since(t1)};
    ::munmap(base, mapped);
    return t;
}

} // namespace

int main(int argc, char** argv) {
    std::size_t mb = 16;
    int rounds = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view arg = argv[i];
        if (arg == "--mb")
            mb = std::strtoul(argv[i + 1], nullptr, 10);
        else if (arg == "--rounds")
            rounds = std::atoi(argv[i + 1]);
    }
    if (mb == 0 || rounds <= 0) {
        std::fputs("usage: bench_page_faults [--mb N] [--rounds N]\n", stderr);
        return 2;
    }
    const std::size_t size = mb * 1024 * 1024;
    std::printf("first write to %zu MB of fresh memory, ms per MB: all (the write alone)\n", mb);
    for (int r = 1; r <= rounds; ++r) {
        std::printf("round %d:", r);
        for (const char* kind : {"4 KiB pages", "huge pages", "MAP_POPULATE", "POPULATE_WRITE"}) {
            const timing t = one(kind, size);
            std::printf("  %s %.2f (%.2f)", kind, t.total_ms / static_cast<double>(mb),
                        t.write_ms / static_cast<double>(mb));
        }
        std::printf("\n");
    }
    return 0;
}
