// SPDX-License-Identifier: MIT
#include <icmpengine/target_list.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <sstream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using Catch::Matchers::Contains;
using icmpengine::family_filter;
using icmpengine::ip_address;
using icmpengine::resolution;
using icmpengine::target;
using icmpengine::target_failure;
using icmpengine::target_list;
using icmpengine::target_list_options;

namespace {

ip_address addr(const char* text) {
    return ip_address::parse(text);
}

std::vector<std::string> texts(const target_list& list) {
    std::vector<std::string> out;
    for (const auto& t : list.targets())
        out.push_back(t.address.to_string());
    return out;
}

// Runs `f`, which must throw std::invalid_argument, and returns its message.
template <typename F>
std::string invalid_argument_message(F&& f) {
    try {
        f();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    FAIL("no std::invalid_argument thrown");
    return {};
}

// A resolver that answers from a table, records its calls, and fails like
// getaddrinfo for names it does not know.
struct fake_resolver {
    std::map<std::string, std::vector<ip_address>> table;
    std::vector<std::pair<std::string, family_filter>> calls;

    icmpengine::resolver as_resolver() {
        return [this](const std::string& name, family_filter filter) {
            calls.emplace_back(name, filter);
            resolution r;
            if (const auto it = table.find(name); it != table.end())
                r.addresses = it->second;
            else
                r.error = "Name or service not known";
            return r;
        };
    }
};

target_list_options with_resolver(fake_resolver& fake, family_filter family = family_filter::any) {
    target_list_options o;
    o.family = family;
    o.resolve = fake.as_resolver();
    return o;
}

} // namespace

TEST_CASE("IPv4 CIDR prefixes expand like fping -g", "[targets]") {
    target_list list;
    SECTION("/30: network and broadcast left out") {
        CHECK(list.add_cidr("198.18.0.0/30") == 2);
        CHECK(texts(list) == std::vector<std::string>{"198.18.0.1", "198.18.0.2"});
    }
    SECTION("/29") {
        CHECK(list.add_cidr("198.18.0.8/29") == 6);
        CHECK(texts(list).front() == "198.18.0.9");
        CHECK(texts(list).back() == "198.18.0.14");
    }
    SECTION("/31: both addresses (RFC 3021)") {
        CHECK(list.add_cidr("198.18.0.4/31") == 2);
        CHECK(texts(list) == std::vector<std::string>{"198.18.0.4", "198.18.0.5"});
    }
    SECTION("/32: the address itself") {
        CHECK(list.add_cidr("198.18.0.7/32") == 1);
        CHECK(texts(list) == std::vector<std::string>{"198.18.0.7"});
    }
    SECTION("misaligned: host bits are cleared, as fping does") {
        CHECK(list.add_cidr("198.18.0.5/30") == 2);
        CHECK(texts(list) == std::vector<std::string>{"198.18.0.5", "198.18.0.6"});
        target_list other;
        other.add_cidr("198.18.0.255/31");
        CHECK(texts(other) == std::vector<std::string>{"198.18.0.254", "198.18.0.255"});
    }
    SECTION("at the top of the address space") {
        CHECK(list.add_cidr("255.255.255.252/30") == 2);
        CHECK(texts(list) == std::vector<std::string>{"255.255.255.253", "255.255.255.254"});
        CHECK(list.add_cidr("255.255.255.254/31") == 1); // .254 was there already
        CHECK(texts(list).back() == "255.255.255.255");
    }
    SECTION("a /16 in order, with no name") {
        CHECK(list.add_cidr("10.1.0.0/16") == 65534);
        CHECK(list.targets().front().address == addr("10.1.0.1"));
        CHECK(list.targets().back().address == addr("10.1.255.254"));
        CHECK(list.targets()[255].address == addr("10.1.1.0"));
        CHECK(list.targets().front().name.empty());
    }
}

TEST_CASE("IPv4 /0 is over the default cap, and the message says by how much", "[targets]") {
    target_list list;
    const auto message = invalid_argument_message([&] { list.add_cidr("198.18.0.0/0"); });
    CHECK_THAT(message, Contains("\"198.18.0.0/0\""));
    CHECK_THAT(message, Contains("4294967294"));
    CHECK_THAT(message, Contains("16777216"));
    CHECK(list.empty());
    CHECK(icmpengine::default_target_cap == 16777216);
}

TEST_CASE("IPv6 CIDR prefixes give every address", "[targets]") {
    target_list list;
    SECTION("/126 includes the all-zeros address") {
        CHECK(list.add_cidr("2001:db8::/126") == 4);
        CHECK(texts(list) ==
              std::vector<std::string>{"2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3"});
    }
    SECTION("/127") {
        CHECK(list.add_cidr("2001:db8::a/127") == 2);
        CHECK(texts(list) == std::vector<std::string>{"2001:db8::a", "2001:db8::b"});
    }
    SECTION("/128") {
        CHECK(list.add_cidr("2001:db8::1/128") == 1);
        CHECK(texts(list) == std::vector<std::string>{"2001:db8::1"});
    }
    SECTION("misaligned: host bits are cleared") {
        CHECK(list.add_cidr("2001:db8::5/126") == 4);
        CHECK(list.targets().front().address == addr("2001:db8::4"));
        CHECK(list.targets().back().address == addr("2001:db8::7"));
    }
    SECTION("carry across 16-bit groups") {
        CHECK(list.add_cidr("2001:db8::ff:fffc/120") == 256);
        CHECK(list.targets().front().address == addr("2001:db8::ff:ff00"));
        CHECK(list.targets().back().address == addr("2001:db8::ff:ffff"));
    }
    SECTION("the scope id carries over") {
        CHECK(list.add_cidr("fe80::%3/127") == 2);
        for (const auto& t : list.targets())
            CHECK(t.address.scope_id() == 3);
    }
    SECTION("/64 and /0 are over the cap") {
        auto message = invalid_argument_message([&] { list.add_cidr("2001:db8::/64"); });
        CHECK_THAT(message, Contains("\"2001:db8::/64\""));
        CHECK_THAT(message, Contains("18446744073709551616"));
        message = invalid_argument_message([&] { list.add_cidr("::/0"); });
        CHECK_THAT(message, Contains("\"::/0\""));
        CHECK_THAT(message, Contains("340282366920938463463374607431768211456"));
        CHECK(list.empty());
    }
}

TEST_CASE("malformed CIDR prefixes throw, naming the text", "[targets]") {
    target_list list;
    list.add_address(addr("192.0.2.1"));
    const char* bad = GENERATE(
        "198.18.0.0", "198.18.0.0/", "/24", "198.18.0.0/33", "2001:db8::/129", "198.18.0.0/-1",
        "198.18.0.0/+8", "198.18.0.0/ 8", "198.18.0.0/8x", "198.18.0.0/0008", "host.example/24",
        "198.18.0.256/24", "198.18.0.0/24/24", "fe80::/64%eth0", " 198.18.0.0/24", "");
    INFO("input: \"" << bad << "\"");
    const auto message = invalid_argument_message([&] { list.add_cidr(bad); });
    CHECK_THAT(message, Contains("\"" + std::string(bad) + "\""));
    CHECK(list.size() == 1);
}

TEST_CASE("ranges FIRST LAST", "[targets]") {
    target_list list;
    SECTION("IPv4, inclusive") {
        CHECK(list.add_range("198.18.0.254", "198.18.1.1") == 4);
        CHECK(texts(list) ==
              std::vector<std::string>{"198.18.0.254", "198.18.0.255", "198.18.1.0", "198.18.1.1"});
    }
    SECTION("a single address") {
        CHECK(list.add_range("198.18.0.9", "198.18.0.9") == 1);
    }
    SECTION("up to the last IPv4 address without wrapping") {
        CHECK(list.add_range("255.255.255.254", "255.255.255.255") == 2);
        CHECK(texts(list).back() == "255.255.255.255");
    }
    SECTION("IPv6, across a 64-bit boundary") {
        CHECK(list.add_range("2001:db8::ffff:ffff:ffff:fffe", "2001:db8:0:1::1") == 4);
        CHECK(texts(list) == std::vector<std::string>{"2001:db8::ffff:ffff:ffff:fffe",
                                                      "2001:db8::ffff:ffff:ffff:ffff",
                                                      "2001:db8:0:1::", "2001:db8:0:1::1"});
    }
    SECTION("from ip_address values") {
        CHECK(list.add_range(addr("192.0.2.1"), addr("192.0.2.3")) == 3);
        const auto message =
            invalid_argument_message([&] { list.add_range(addr("192.0.2.3"), addr("192.0.2.1")); });
        CHECK_THAT(message, Contains("\"192.0.2.3\""));
        CHECK_THAT(message, Contains("above"));
    }
    SECTION("scoped IPv6 of one scope") {
        CHECK(list.add_range("fe80::1%4", "fe80::3%4") == 3);
        CHECK(list.targets().back().address.scope_id() == 4);
    }
}

TEST_CASE("bad ranges throw, naming the text", "[targets]") {
    target_list list;
    const auto row = GENERATE(table<const char*, const char*, const char*>({
        {"198.18.0.9", "198.18.0.1", "above"},
        {"198.18.0.1", "2001:db8::1", "IPv4"},
        {"2001:db8::1", "198.18.0.1", "IPv6"},
        {"198.18.0.x", "198.18.0.1", "\"198.18.0.x\" is not an IP address"},
        {"198.18.0.1", "", "\"\" is not an IP address"},
        {"fe80::1%1", "fe80::2%2", "scope"},
        {"0.0.0.0", "255.255.255.255", "4294967296"},
        {"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
         "340282366920938463463374607431768211456"},
    }));
    // Plain variables: clang 14 cannot capture structured bindings.
    const char* first = std::get<0>(row);
    const char* last = std::get<1>(row);
    const char* expect = std::get<2>(row);
    INFO(first << " " << last);
    const auto message = invalid_argument_message([&] { list.add_range(first, last); });
    CHECK_THAT(message, Contains("\"" + std::string(first) + "\""));
    CHECK_THAT(message, Contains("\"" + std::string(last) + "\""));
    CHECK_THAT(message, Contains(expect));
    CHECK(list.empty());
}

TEST_CASE("the cap is configurable and exact", "[targets]") {
    target_list_options options;
    options.cap = 6;
    target_list list(options);
    CHECK(list.add_cidr("198.18.0.0/29") == 6); // 6 hosts: at the cap
    CHECK(list.add_range("198.18.1.0", "198.18.1.5") == 6);
    auto message = invalid_argument_message([&] { list.add_cidr("198.18.2.0/28"); });
    CHECK_THAT(message, Contains("\"198.18.2.0/28\""));
    CHECK_THAT(message, Contains(" 14 "));
    CHECK_THAT(message, Contains("cap of 6"));
    message = invalid_argument_message([&] { list.add_range("198.18.3.0", "198.18.3.6"); });
    CHECK_THAT(message, Contains(" 7 "));
    message = invalid_argument_message([&] { list.add_cidr("2001:db8::/125"); });
    CHECK_THAT(message, Contains(" 8 "));
    CHECK(list.size() == 12);

    // The cap bounds one expansion, not the list: many small adds are fine.
    for (int i = 0; i < 10; ++i)
        list.add_address(ip_address::from_v4(0xc0000200u + static_cast<std::uint32_t>(i)));
    CHECK(list.size() == 22);

    options.cap = 0;
    message = invalid_argument_message([&] { target_list bad(options); });
    CHECK_THAT(message, Contains("0"));
}

TEST_CASE("de-duplication keeps the first-seen order and name", "[targets]") {
    fake_resolver fake;
    fake.table["gw.example"] = {addr("198.18.0.2")};
    fake.table["dual.example"] = {addr("2001:db8::2"), addr("198.18.0.9")};
    target_list list(with_resolver(fake));

    CHECK(list.add_address(addr("198.18.0.3")) == 1);
    CHECK(list.add_name("gw.example") == 1);
    CHECK(list.add_cidr("198.18.0.0/29") == 4); // .3 and .2 are there already
    CHECK(list.add_cidr("198.18.0.0/29") == 0);
    CHECK(list.add_range("198.18.0.1", "198.18.0.7") == 1); // only .7 is new
    CHECK(list.add_name("198.18.0.5") == 0);                // from the CIDR: stays unnamed
    CHECK(list.add_name("198.18.0.10") == 1);
    CHECK(list.add_address(addr("198.18.0.10")) == 0);
    CHECK(list.add_name("dual.example") == 1);

    const std::vector<target> expected{
        {addr("198.18.0.3"), ""},
        {addr("198.18.0.2"), "gw.example"},
        {addr("198.18.0.1"), ""},
        {addr("198.18.0.4"), ""},
        {addr("198.18.0.5"), ""},
        {addr("198.18.0.6"), ""},
        {addr("198.18.0.7"), ""},
        {addr("198.18.0.10"), "198.18.0.10"},
        {addr("2001:db8::2"), "dual.example"},
    };
    CHECK(list.targets() == expected);
    CHECK(list.failures().empty());
}

TEST_CASE("de-duplication over a large list", "[targets]") {
    target_list list;
    CHECK(list.add_cidr("10.0.0.0/14") == 262142);
    CHECK(list.add_range("10.3.255.250", "10.4.0.5") == 7); // 10.3.255.255 and 10.4.0.0 .. .5
    CHECK(list.add_cidr("10.2.0.0/16") == 0);
    CHECK(list.size() == 262149);
    CHECK(list.targets()[262142].address == addr("10.3.255.255"));
    CHECK(list.targets().back().address == addr("10.4.0.5"));
}

TEST_CASE("names resolve through the injected resolver", "[targets]") {
    fake_resolver fake;
    fake.table["a.example"] = {addr("192.0.2.1"), addr("2001:db8::1")};
    fake.table["b.example"] = {addr("192.0.2.2")};
    fake.table["empty.example"] = {};

    SECTION("first address only, by default; failures do not stop") {
        target_list list(with_resolver(fake));
        CHECK(list.add_name("a.example") == 1);
        CHECK(list.add_name("nope.example") == 0);
        CHECK(list.add_name("empty.example") == 0);
        CHECK(list.add_name("b.example") == 1);
        CHECK(list.targets() == std::vector<target>{{addr("192.0.2.1"), "a.example"},
                                                    {addr("192.0.2.2"), "b.example"}});
        CHECK(list.failures() ==
              std::vector<target_failure>{{"nope.example", "Name or service not known", 0},
                                          {"empty.example", "no address", 0}});
        CHECK(fake.calls.size() == 4);
        CHECK(fake.calls[0].second == family_filter::any);
    }
    SECTION("every address with all_addresses (fping -m)") {
        auto options = with_resolver(fake);
        options.all_addresses = true;
        target_list list(options);
        CHECK(list.add_name("a.example") == 2);
        CHECK(texts(list) == std::vector<std::string>{"192.0.2.1", "2001:db8::1"});
    }
    SECTION("literals need no resolver, and keep the text as their name") {
        target_list list(with_resolver(fake));
        CHECK(list.add_name("192.0.2.77") == 1);
        CHECK(list.add_name("2001:db8::77") == 1);
        CHECK(fake.calls.empty());
        CHECK(list.targets()[1].name == "2001:db8::77");
    }
    SECTION("an empty name is a programmer error") {
        target_list list(with_resolver(fake));
        CHECK_THROWS_AS(list.add_name(""), std::invalid_argument);
    }
}

TEST_CASE("the family filter mirrors fping -4 / -6", "[targets]") {
    fake_resolver fake;
    fake.table["dual.example"] = {addr("2001:db8::1"), addr("192.0.2.1")};
    fake.table["v6.example"] = {addr("2001:db8::6")};

    SECTION("-4") {
        target_list list(with_resolver(fake, family_filter::v4));
        CHECK(list.add_name("dual.example") == 1);
        CHECK(texts(list) == std::vector<std::string>{"192.0.2.1"});
        CHECK(fake.calls.at(0) ==
              std::pair<std::string, family_filter>{"dual.example", family_filter::v4});
        CHECK(list.add_name("v6.example") == 0);
        CHECK(list.add_name("2001:db8::5") == 0);
        REQUIRE(list.failures().size() == 2);
        CHECK(list.failures()[0] == target_failure{"v6.example", "no IPv4 address", 0});
        CHECK(list.failures()[1].name == "2001:db8::5");
        CHECK_THAT(list.failures()[1].reason, Contains("only IPv4"));

        auto message = invalid_argument_message([&] { list.add_cidr("2001:db8::/126"); });
        CHECK_THAT(message, Contains("\"2001:db8::/126\""));
        CHECK_THAT(message, Contains("only IPv4"));
        message = invalid_argument_message([&] { list.add_range("2001:db8::1", "2001:db8::2"); });
        CHECK_THAT(message, Contains("\"2001:db8::1\""));
        message = invalid_argument_message([&] { list.add_address(addr("2001:db8::9")); });
        CHECK_THAT(message, Contains("\"2001:db8::9\""));
        CHECK(list.size() == 1);
    }
    SECTION("-6") {
        target_list list(with_resolver(fake, family_filter::v6));
        CHECK(list.add_name("dual.example") == 1);
        CHECK(texts(list) == std::vector<std::string>{"2001:db8::1"});
        CHECK(fake.calls.at(0).second == family_filter::v6);
        CHECK(list.add_cidr("2001:db8::8/127") == 2);
        const auto message = invalid_argument_message([&] { list.add_cidr("192.0.2.0/30"); });
        CHECK_THAT(message, Contains("only IPv6"));
        CHECK(list.add_name("192.0.2.1") == 0);
        CHECK(list.failures().size() == 1);
    }
}

TEST_CASE("streams: one target per line, blank lines and comments skipped", "[targets]") {
    fake_resolver fake;
    fake.table["router.example"] = {addr("192.0.2.254")};
    target_list list(with_resolver(fake));
    std::istringstream in("# targets for the lab\n"
                          "\n"
                          "192.0.2.1\n"
                          "   router.example   # the gateway\r\n"
                          "\t\n"
                          "2001:db8::1\r\n"
                          "#192.0.2.99\n"
                          "unknown.example\n"
                          "192.0.2.1\n"
                          "192.0.2.5 192.0.2.6\n"
                          "192.0.2.7"); // no final newline
    CHECK(list.add_stream(in) == 4);
    CHECK(list.targets() == std::vector<target>{{addr("192.0.2.1"), "192.0.2.1"},
                                                {addr("192.0.2.254"), "router.example"},
                                                {addr("2001:db8::1"), "2001:db8::1"},
                                                {addr("192.0.2.7"), "192.0.2.7"}});
    REQUIRE(list.failures().size() == 2);
    CHECK(list.failures()[0] == target_failure{"unknown.example", "Name or service not known", 8});
    CHECK(list.failures()[1].name == "192.0.2.5 192.0.2.6");
    CHECK(list.failures()[1].line == 10);
    CHECK_THAT(list.failures()[1].reason, Contains("one address or host name per line"));
    CHECK(fake.calls.size() == 2);
}

TEST_CASE("an empty stream adds nothing", "[targets]") {
    target_list list;
    std::istringstream in("\n# nothing\n   \n");
    CHECK(list.add_stream(in) == 0);
    CHECK(list.empty());
    CHECK(list.failures().empty());
}

namespace {
// A stream buffer that yields one line and then fails, like a read error.
struct failing_buffer : std::streambuf {
    std::string data = "192.0.2.1\n";
    bool given = false;
    int_type underflow() override {
        if (given)
            throw std::runtime_error("EIO");
        given = true;
        setg(data.data(), data.data(), data.data() + data.size());
        return traits_type::to_int_type(data[0]);
    }
};
} // namespace

TEST_CASE("a stream read error throws after adding what was read", "[targets]") {
    failing_buffer buffer;
    std::istream in(&buffer);
    target_list list;
    try {
        list.add_stream(in);
        FAIL("no exception");
    } catch (const std::runtime_error& e) {
        CHECK_THAT(e.what(), Contains("line 1"));
    }
    CHECK(texts(list) == std::vector<std::string>{"192.0.2.1"});
}

TEST_CASE("the default resolver resolves localhost with getaddrinfo", "[targets]") {
    // The only real name resolution in the unit tests: /etc/hosts, no DNS.
    const auto any = icmpengine::resolve_host_name("localhost", family_filter::any);
    INFO(any.error);
    REQUIRE_FALSE(any.addresses.empty());
    CHECK(any.error.empty());
    for (const auto& a : any.addresses)
        CHECK(a.is_loopback());

    const auto v4 = icmpengine::resolve_host_name("localhost", family_filter::v4);
    REQUIRE_FALSE(v4.addresses.empty());
    for (const auto& a : v4.addresses)
        CHECK(a.is_v4());
    // No duplicates although the name has an entry per socket type.
    for (std::size_t i = 0; i < v4.addresses.size(); ++i)
        for (std::size_t j = i + 1; j < v4.addresses.size(); ++j)
            CHECK(v4.addresses[i] != v4.addresses[j]);

    const auto nul =
        icmpengine::resolve_host_name(std::string("local\0host", 10), family_filter::any);
    CHECK(nul.addresses.empty());
    CHECK_FALSE(nul.error.empty());

    target_list list; // default options: getaddrinfo
    CHECK(list.add_name("localhost") == 1);
    CHECK(list.targets().front().address.is_loopback());
    CHECK(list.targets().front().name == "localhost");
}
