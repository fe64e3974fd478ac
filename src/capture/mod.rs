//! Live NFLOG capture over netlink (issue 4).
