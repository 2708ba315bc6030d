// SPDX-License-Identifier: MIT
// Everything public in icmpengine.
#pragma once

#include <icmpengine/engine.hpp>
#include <icmpengine/engine_pool.hpp>
#include <icmpengine/errors.hpp>
#include <icmpengine/ip_address.hpp>
#include <icmpengine/limits.hpp>
#include <icmpengine/ping_result.hpp>
#include <icmpengine/ping_series.hpp>
#include <icmpengine/ping_statistics.hpp>
#include <icmpengine/remote_engine.hpp>
#include <icmpengine/target_list.hpp>
#include <icmpengine/task.hpp>
#include <icmpengine/when_all.hpp>
