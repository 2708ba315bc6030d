// SPDX-License-Identifier: MIT
// Runs a fuzz target's LLVMFuzzerTestOneInput once on every file under the
// directories (or the files) given, so that the seed corpus and the crash
// inputs kept in tests/fuzz/regressions/ are tested in every build, with any
// compiler. A broken invariant aborts (fuzz_input.hpp); the input being run
// is named on stderr first.
//
//     fuzz_packet_replay tests/fuzz/corpus/packet tests/fuzz/regressions
//
// Exits 1 if an argument cannot be read, or if there was nothing to run: a
// test that ran no input has tested nothing.
#include "fuzz_input.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <vector>

namespace {

namespace fs = std::filesystem;

bool run_file(const fs::path& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        return false;
    }
    const std::vector<char> data{std::istreambuf_iterator<char>(file),
                                 std::istreambuf_iterator<char>()};
    std::fprintf(stderr, "%s (%zu bytes)\n", path.c_str(), data.size());
    std::fflush(stderr);
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
    return true;
}

} // namespace

int main(int argc, char** argv) {
    std::size_t runs = 0;
    for (int i = 1; i < argc; ++i) {
        const fs::path arg = argv[i];
        std::error_code ec;
        if (!fs::is_directory(arg, ec)) {
            if (!run_file(arg))
                return 1;
            ++runs;
            continue;
        }
        // Sorted, so that runs are reproducible; README.md explains the
        // directory and is not an input.
        std::vector<fs::path> files;
        for (const auto& entry : fs::recursive_directory_iterator(arg, ec))
            if (entry.is_regular_file() && entry.path().filename() != "README.md")
                files.push_back(entry.path());
        if (ec) {
            std::fprintf(stderr, "cannot list %s: %s\n", arg.c_str(), ec.message().c_str());
            return 1;
        }
        std::sort(files.begin(), files.end());
        for (const fs::path& f : files) {
            if (!run_file(f))
                return 1;
            ++runs;
        }
    }
    std::printf("%zu inputs run\n", runs);
    return runs == 0 ? 1 : 0;
}
