//! Packet header decoding: IPv4, IPv6, TCP, UDP, ICMP, ... (issue 2).
