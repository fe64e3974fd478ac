//! The packet record: everything NFLOG (or a capture file) tells us about one logged packet.
//!
//! [`Packet`] is a *borrowed view*: its byte fields point into the buffer the record was parsed
//! from (a netlink datagram, a spool record, a pcap block), so intake, replay and `fwlog read`
//! never copy a payload just to look at it. Formatters take a `Packet` plus the decoded headers.
//!
//! Strings here (prefix, interface names) are raw bytes as the kernel or the file gave them.
//! They are *untrusted*: a pcap from another machine can hold anything. Formatters escape them.

/// Where a packet's timestamp came from. The kernel stamps only packets that it received
/// (hooks up to FORWARD); locally generated packets carry no timestamp, so intake stamps them
/// with the local clock at receive time and says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeSource {
    /// NFULA_TIMESTAMP: the kernel's own receive time of the packet.
    Kernel,
    /// fwlog's clock when the record was read from the netlink socket.
    Local,
    /// The capture file's per-record timestamp (tcpdump's clock when it read the record).
    Capture,
}

/// A point in time, UTC seconds since the epoch plus nanoseconds, and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
    pub source: TimeSource,
}

impl Timestamp {
    /// Placeholder time for parsing records whose own time is not needed.
    pub const EPOCH: Timestamp = Timestamp {
        sec: 0,
        nsec: 0,
        source: TimeSource::Local,
    };
}

/// A network interface as the kernel named it when the packet was logged.
///
/// NFLOG gives only the index; fwlog resolves it to a name at receive time (interfaces come and
/// go, and a spool may be replayed on another machine), and stores the name with the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iface<'a> {
    pub index: u32,
    /// `None` when the name is unknown (an NFLOG pcap written by tcpdump carries only indexes).
    pub name: Option<&'a [u8]>,
}

/// The netfilter hook numbers, as NFLOG reports them in `NFULA_PACKET_HDR`.
pub mod hook {
    pub const PRE_ROUTING: u8 = 0;
    pub const LOCAL_IN: u8 = 1;
    pub const FORWARD: u8 = 2;
    pub const LOCAL_OUT: u8 = 3;
    pub const POST_ROUTING: u8 = 4;

    /// The lowercase name fwlog prints beside the number.
    pub fn name(h: u8) -> Option<&'static str> {
        Some(match h {
            PRE_ROUTING => "prerouting",
            LOCAL_IN => "input",
            FORWARD => "forward",
            LOCAL_OUT => "output",
            POST_ROUTING => "postrouting",
            _ => return None,
        })
    }

    /// The hook's name in the family the record came from: the netdev family numbers its
    /// hooks ingress 0, egress 1; the arp family input 0, output 1, forward 2; the bridge
    /// family has brouting 5; everything else uses the inet numbering of [`name`].
    pub fn name_in(family: u8, h: u8) -> Option<&'static str> {
        use super::family;
        match (family, h) {
            (family::NETDEV, 0) => Some("ingress"),
            (family::NETDEV, 1) => Some("egress"),
            (family::NETDEV, _) => None,
            (family::ARP, 0) => Some("input"),
            (family::ARP, 1) => Some("output"),
            (family::ARP, 2) => Some("forward"),
            (family::ARP, _) => None,
            (family::BRIDGE, 5) => Some("brouting"),
            _ => name(h),
        }
    }
}

/// Address families as they appear in `nfgenmsg.nfgen_family`.
pub mod family {
    pub const UNSPEC: u8 = 0;
    pub const INET: u8 = 2;
    /// NFPROTO_ARP: nft `table arp` (arptables).
    pub const ARP: u8 = 3;
    /// NFPROTO_NETDEV: nft `table netdev` (ingress/egress of one device).
    pub const NETDEV: u8 = 5;
    pub const BRIDGE: u8 = 7;
    pub const INET6: u8 = 10;
}

/// An 802.1Q/802.1ad tag the kernel held out of band (`skb->vlan_tci`), from the nested
/// NFULA_VLAN attribute. The kernel sends it for the bridge and netdev families only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vlan {
    /// The tag protocol (TPID): 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    pub proto: u16,
    /// The whole tag control information: priority (3 bits), DEI (1 bit), VLAN id (12 bits).
    pub tci: u16,
}

impl Vlan {
    /// The VLAN id (low 12 bits of the TCI).
    pub fn id(self) -> u16 {
        self.tci & 0x0fff
    }

    /// The priority code point (top 3 bits).
    pub fn pcp(self) -> u8 {
        (self.tci >> 13) as u8
    }

    /// The drop eligible indicator (bit 12).
    pub fn dei(self) -> bool {
        self.tci & 0x1000 != 0
    }
}

/// One logged packet with its kernel metadata. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// `nfgenmsg.nfgen_family`: [`family::INET`], [`family::INET6`], [`family::BRIDGE`], ...
    /// (for `table inet` rules the kernel reports INET or INET6 per packet).
    /// For capture files without NFLOG metadata it is derived from the IP version nibble.
    pub family: u8,
    /// The NFLOG group (`nfgenmsg.res_id`); 0 for capture files without NFLOG metadata.
    pub group: u16,
    /// Netfilter hook (NFULA_PACKET_HDR), `None` when unknown.
    pub hook: Option<u8>,
    /// Link-layer protocol (ethertype) from NFULA_PACKET_HDR; 0 for locally generated packets.
    pub hw_protocol: Option<u16>,
    /// Packet mark (NFULA_MARK); the kernel sends it only when non-zero, so absent means 0.
    pub mark: u32,
    pub timestamp: Timestamp,
    pub indev: Option<Iface<'a>>,
    pub outdev: Option<Iface<'a>>,
    pub physindev: Option<Iface<'a>>,
    pub physoutdev: Option<Iface<'a>>,
    /// NFULA_HWADDR: the source hardware address (already cut to its real length).
    pub hwaddr: Option<&'a [u8]>,
    /// NFULA_HWTYPE: ARPHRD_* of the input device (1 Ethernet, 772 loopback, ...).
    pub hwtype: Option<u16>,
    /// NFULA_HWHEADER: the link-layer header bytes (what the kernel prints as `MAC=`).
    /// The kernel sends it only when there is an input device.
    pub hwheader: Option<&'a [u8]>,
    /// NFULA_L2HDR: the whole link-layer header from the MAC header to the network header
    /// (bridge and netdev families only, with or without an input device).
    pub l2header: Option<&'a [u8]>,
    /// NFULA_VLAN: the out-of-band VLAN tag (bridge and netdev families only).
    pub vlan: Option<Vlan>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// NFULA_SEQ: per-group sequence number (with NFULNL_CFG_F_SEQ).
    pub seq: Option<u32>,
    /// NFULA_SEQ_GLOBAL: sequence number across all groups (with NFULNL_CFG_F_SEQ_GLOBAL).
    pub seq_global: Option<u32>,
    /// The rule's log prefix, without its terminating NUL. `None` when the rule had none.
    pub prefix: Option<&'a [u8]>,
    /// The packet from the network header on. May be cut short by the rule's copy range
    /// (snaplen) or the capture's snaplen: the IP header's length field tells how long it was.
    pub payload: &'a [u8],
    /// Original length of the packet when the source knows it (a pcap record's orig_len, made
    /// relative to `payload`); `None` when only the IP header can tell.
    pub orig_len: Option<u32>,
    /// True when this line comes from the spool at start-up or from `fwlog replay`.
    pub replayed: bool,
    /// Set when the metadata itself was damaged (a TLV running past the end, say): the fields
    /// above hold what could be read, and this says where reading stopped.
    pub damage: Option<String>,
}

impl<'a> Packet<'a> {
    /// An empty record for `payload`, to be filled in by a parser.
    pub fn new(payload: &'a [u8], timestamp: Timestamp) -> Self {
        Packet {
            family: family::UNSPEC,
            group: 0,
            hook: None,
            hw_protocol: None,
            mark: 0,
            timestamp,
            indev: None,
            outdev: None,
            physindev: None,
            physoutdev: None,
            hwaddr: None,
            hwtype: None,
            hwheader: None,
            l2header: None,
            vlan: None,
            uid: None,
            gid: None,
            seq: None,
            seq_global: None,
            prefix: None,
            payload,
            orig_len: None,
            replayed: false,
            damage: None,
        }
    }
}
