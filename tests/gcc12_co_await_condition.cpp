// SPDX-License-Identifier: MIT
// A GCC 12 miscompile, reduced: a co_await in the condition of a loop (or an
// if) whose body declares no variable.
//
//     while (co_await eng.sleep_for(1ms)) {   // GCC 12.2, -O0 and -O2 alike:
//         ++turns;                             // a crash, an illegal instruction,
//     }                                        // or a coroutine never resumed
//
// The awaiting coroutine is not resumed correctly after the awaited task
// ends: depending on the frame's contents it crashes (seen as SIGILL in
// tests/soak.cpp, SIGSEGV here) or is never resumed, and run() then reports
// a task waiting for nothing it drives. It needs no engine: a ten-line lazy
// task type awaited in `while (co_await t())`, `if (co_await t())` or
// `do ... while (co_await t())` does the same. clang 14 compiles all of these
// correctly. The workaround, used wherever this project loops on a sleep:
//
//     for (;;) {
//         const bool slept = co_await eng.sleep_for(1ms);
//         if (!slept)
//             break;
//         ...
//     }
//
// (A body that declares a local variable also avoids it, which is why
// `while (co_await ...)` loops with such a body happen to work; do not rely
// on it.) tests/meson.build expects this program to fail when built with
// GCC 12 and to pass with any other compiler: if a GCC 12 release fixes the
// bug, the test reports an unexpected pass, and the workarounds can go.
#include <icmpengine/engine.hpp>

#include <chrono>
#include <cstdio>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

icmpengine::task<void> count_turns(icmpengine::engine& eng, int& turns) {
    while (co_await eng.sleep_for(1ms)) {
        if (++turns == 3)
            eng.stop(); // wakes this sleep, and every later one, with false
    }
}

} // namespace

int main() {
    ::alarm(60); // a miscompiled loop that hangs dies of SIGALRM instead
    icmpengine::engine eng;
    int turns = 0;
    eng.run(count_turns(eng, turns));
    std::printf("%d turns of `while (co_await eng.sleep_for(1ms))` (3 expected)\n", turns);
    return turns == 3 ? 0 : 1;
}
