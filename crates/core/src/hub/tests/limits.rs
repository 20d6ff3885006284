use super::*;

// ===== PeerJS: size and rate limits =====================================================
// The PeerJS protocol has no "slow down" or "too large" message: such frames just vanish.

/// An OFFER to `dst` padded with spaces to exactly `len` bytes.
fn offer_of_len(dst: &str, len: usize) -> String {
    let base = offer(dst, 0);
    let mut s = base[..base.len() - 1].to_string();
    s.push_str(&" ".repeat(len - base.len()));
    s.push('}');
    assert_eq!(s.len(), len);
    s
}

#[test]
fn oversize_peerjs_frames_are_dropped_silently() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    assert_eq!(hub.on_text(1, &offer_of_len("b", MAX_FRAME_BYTES + 1), 1), vec![]);
    assert_eq!(hub.on_text(1, &offer_of_len("ghost", MAX_FRAME_BYTES + 1), 2), vec![]);
    assert_eq!(hub.stats().queued, 0);
    let fx = hub.on_text(1, &offer_of_len("b", MAX_FRAME_BYTES), 3);
    assert_eq!(pj_to(&fx, 2), vec![relayed_offer("a", "b", 0)], "exactly 64 KiB is allowed");
    assert_eq!(hub.peer_ids().len(), 2);
}

#[test]
fn the_third_oversize_frame_closes_the_socket_with_1009() {
    let mut hub = Sim::new(global_cfg());
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    assert_eq!(hub.on_text(1, &offer_of_len("b", MAX_FRAME_BYTES + 1), 1), vec![]);
    assert_eq!(hub.hub.on_oversize(1, 2), vec![], "measured by the shell without a copy: same rule");
    let fx = hub.hub.on_oversize(1, 3);
    assert_eq!(closes(&fx), vec![(1, close::TOO_BIG)]);
    assert_eq!(hub.peer_ids(), vec!["b".to_string()], "its id is released");
    assert_eq!(hub.hub.on_oversize(1, 4), vec![], "a closed socket is ignored");
}

#[test]
fn peerjs_rate_limit_drops_silently_and_refills() {
    let mut hub = Sim::new(Config { membership: false, peerjs_rate: Rate { per_sec: 10, burst: 3 }, ..cfg() });
    peer(&mut hub, 1, "a", 0);
    peer(&mut hub, 2, "b", 0);
    let mut got = Vec::new();
    for n in 0..6 {
        let fx = hub.on_text(1, &offer("b", n), 0);
        assert!(recipients(&fx).iter().all(|s| *s == 2), "nothing goes back to the sender: {fx:?}");
        assert_eq!(closes(&fx), vec![]);
        got.extend(pj_to(&fx, 2));
    }
    assert_eq!(got, (0..3).map(|n| relayed_offer("a", "b", n)).collect::<Vec<_>>());
    assert_eq!(hub.on_text(1, &offer("b", 9), 99), vec![]);
    assert_eq!(pj_to(&hub.on_text(1, &offer("b", 10), 100), 2), vec![relayed_offer("a", "b", 10)]);
    // The receiver's bucket is its own.
    assert_eq!(pj_to(&hub.on_text(2, &offer("a", 11), 100), 1), vec![relayed_offer("b", "a", 11)]);
}
