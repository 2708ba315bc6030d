// SPDX-License-Identifier: MIT
// Symbol visibility for the shared library. The library is built with
// -fvisibility=hidden; only what is marked ICMPENGINE_API is exported.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define ICMPENGINE_API __attribute__((visibility("default")))
#else
#define ICMPENGINE_API
#endif
