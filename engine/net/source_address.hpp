#pragma once
// Whether a --source address can be sent from on this machine, asked before any probe: a
// connect from an address the machine does not have fails with "Cannot assign requested
// address", which must read as the user's mistake, never as a firewall or a dead server.

#include <optional>
#include <string>
#include <string_view>

namespace smtpsh::net {

// nullopt when `address` is an IP address this machine can bind; otherwise one sentence
// saying why not ("it is not an address of this machine").
std::optional<std::string> source_address_problem(std::string_view address);

}  // namespace smtpsh::net
