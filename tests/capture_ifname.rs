//! The interface-name cache against the real kernel: names come from the namespace the cache
//! was created in, and a reused index is re-resolved once the entry's time is up. (veth pairs
//! stand in for dummy interfaces, whose module this kernel lacks.)

mod support;

use fwlog::capture::IfNameCache;
use std::time::{Duration, Instant};
use support::netns::NetNs;

#[test]
fn reused_index_is_renamed_after_the_ttl_and_namespace_is_the_creators() {
    require_root!();
    let ns = NetNs::new("capifname");
    ns.ip(&[
        "link", "add", "fwa", "index", "4242", "type", "veth", "peer", "name", "fwap",
    ]);
    let mut cache = ns
        .enter(|| IfNameCache::with_ttl(Duration::from_secs(1)))
        .expect("cache");
    // Used from this thread (another namespace), it still resolves in the test namespace.
    let t0 = Instant::now();
    assert_eq!(cache.get(4242, t0), Some(&b"fwa"[..]));

    ns.ip(&["link", "del", "fwa"]);
    ns.ip(&[
        "link", "add", "fwb", "index", "4242", "type", "veth", "peer", "name", "fwbp",
    ]);
    // Within the ttl the cached name stands (one lookup so far)...
    assert_eq!(
        cache.get(4242, t0 + Duration::from_millis(500)),
        Some(&b"fwa"[..])
    );
    assert_eq!(cache.kernel_lookups(), 1);
    // ...after it, the index is checked again and the new interface's name appears.
    let t1 = t0 + Duration::from_millis(1500);
    assert_eq!(cache.get(4242, t1), Some(&b"fwb"[..]));

    // An interface that is gone resolves to nothing after the next check.
    ns.ip(&["link", "del", "fwb"]);
    assert_eq!(cache.get(4242, t1 + Duration::from_secs(2)), None);
    assert_eq!(cache.kernel_lookups(), 3);
}
