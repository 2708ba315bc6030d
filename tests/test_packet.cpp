// work in progress
#include <catch2/catch.hpp>
