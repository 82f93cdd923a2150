//! The mid rewriting of a mountpoint's offer and the viewer's answer
//! (`media::webrtc::mids`): whatever the peer sends, the rewrite never panics, keeps
//! every line but `a=mid:`/`a=group:BUNDLE` byte for byte, and undoes itself on what
//! it wrote.
#![no_main]

use cardea::media::webrtc::mids::MidMap;
use libfuzzer_sys::fuzz_target;
use str0m::media::Mid;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let map = MidMap::new([
        (Mid::from("Q6d"), "v".to_owned()),
        (Mid::from("xqS"), "a2".to_owned()),
    ]);
    let ours = map.from_wire(text);
    let kept = |s: &str| -> Vec<String> {
        s.split('\n')
            .filter(|l| !l.starts_with("a=mid:") && !l.starts_with("a=group:BUNDLE"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(kept(text), kept(&ours));
    // What we write for the peer reads back as what str0m wrote.
    let wire = map.to_wire(&ours);
    assert_eq!(kept(&wire), kept(&ours));
    let back = map.from_wire(&wire);
    let mids = |s: &str| -> Vec<String> {
        s.split('\n')
            .filter_map(|l| l.strip_prefix("a=mid:"))
            .map(|m| m.trim_end_matches('\r').to_owned())
            .collect()
    };
    if !mids(&ours).iter().any(|m| m == "v" || m == "a2") {
        assert_eq!(mids(&back), mids(&ours));
    }
});
