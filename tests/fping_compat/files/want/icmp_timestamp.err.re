\A(fping|icmpengine): --icmp-timestamp is not supported: [^\n]+\n\Z
