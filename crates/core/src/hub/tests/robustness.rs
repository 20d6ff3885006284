use super::*;

// ===== unknown sids =========================================================================
// The runtime may deliver events for sockets the hub never saw or already dropped.

#[test]
fn events_for_unknown_or_closed_sids_do_nothing() {
    let mut hub = Sim::new(cfg());
    member_in(&mut hub, 1, 101, "a", "Ada", 0);
    for sid in [7, 999, u64::MAX] {
        assert_eq!(hub.on_text(sid, &chat_frame("x"), 1), vec![]);
        assert_eq!(hub.on_text(sid, &offer("a", 1), 1), vec![]);
        assert_eq!(hub.on_text(sid, r#"{"type":"LEAVE"}"#, 1), vec![]);
        assert_eq!(hub.on_binary(sid, 10, 1), vec![]);
        assert_eq!(hub.on_close(sid), vec![]);
    }
    hub.on_close(101);
    assert_eq!(hub.on_close(101), vec![]);
    assert_eq!(hub.on_text(101, &chat_frame("x"), 3), vec![]);
    assert_eq!(hub.on_binary(101, 1, 3), vec![]);
    hub.on_close(1);
    assert_eq!(hub.on_close(1), vec![]);
    assert_eq!(hub.on_text(1, &offer("a", 1), 5), vec![]);
    // The closed member's seat waits out the grace period, then ends.
    let fx = hub.on_alarm(6, &[(1, 6), (101, 6), (12345, 6)]);
    assert_eq!(fx, vec![Effect::SetAlarm { at_ms: 1 + GRACE }]);
    assert_eq!(hub.on_alarm(1 + GRACE, &[]), vec![Effect::DropSeat("a".into())]);
    assert_eq!(hub.stats(), crate::hub::HubStats::default());
}

// ===== randomized robustness ==========================================================================
// Garbage from any client must never panic the object nor break service for well-behaved members.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn random_frame(rng: &mut XorShift, valid: &[String]) -> String {
    const TYPES: &[&str] = &[
        "join",
        "chat",
        "media",
        "leave",
        "HEARTBEAT",
        "OFFER",
        "ANSWER",
        "CANDIDATE",
        "LEAVE",
        "EXPIRE",
        "OPEN",
        "ERROR",
        "",
        "chat\u{0}",
        "👩‍💻",
    ];
    const IDS: &[&str] = &["a", "b", "c", "w", "ghost", "", "\u{202E}", "<b>"];
    match rng.below(6) {
        // Random bytes made into a string.
        0 => {
            let len = rng.below(64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // A valid frame truncated at a random char boundary.
        1 => {
            let f = rng.pick(valid);
            let cut: Vec<usize> = f.char_indices().map(|(i, _)| i).collect();
            f[..*rng.pick(&cut)].to_string()
        }
        // Random type and fields of random types.
        2 => {
            let vals = [
                json!(rng.pick(IDS)),
                json!(rng.next() as i64),
                json!(null),
                json!(true),
                json!([1, "x"]),
                json!({ "mic": true }),
                json!("x".repeat(rng.below(40))),
            ];
            let mut obj = serde_json::Map::new();
            obj.insert("type".into(), json!(rng.pick(TYPES)));
            for key in ["dst", "src", "payload", "text", "peerId", "token", "name", "mic", "camera", "media"] {
                if rng.below(3) == 0 {
                    obj.insert(key.into(), rng.pick(&vals).clone());
                }
            }
            Value::Object(obj).to_string()
        }
        // A valid frame, unchanged.
        3 => rng.pick(valid).clone(),
        // A valid frame with one byte replaced.
        4 => {
            let mut b = rng.pick(valid).clone().into_bytes();
            let i = rng.below(b.len());
            b[i] = rng.next() as u8;
            String::from_utf8_lossy(&b).into_owned()
        }
        // JSON that is not an object, or is huge.
        _ => match rng.below(4) {
            0 => "[]".into(),
            1 => "\"x\"".into(),
            2 => "1e999".into(),
            _ => format!(r#"{{"type":"chat","text":"{}"}}"#, "y".repeat(MAX_FRAME_BYTES)),
        },
    }
}

/// What the randomized test checks about every batch of effects, and counts.
#[derive(Default)]
struct Tally {
    rooms: BTreeSet<Sid>,
    closed: BTreeSet<Sid>,
    seen: BTreeMap<&'static str, usize>,
}

impl Tally {
    /// Every frame parses as its socket's protocol; nothing reaches a socket after its Close.
    fn check(&mut self, fx: &[Effect]) {
        for e in fx {
            match e {
                Effect::Send { to, frame } => {
                    assert!(!self.closed.contains(to), "send to closed {to}: {fx:?}");
                    let kind = if self.rooms.contains(to) {
                        match serde_json::from_str::<ServerFrame>(frame).expect("room frame") {
                            ServerFrame::Error { .. } => "room error",
                            ServerFrame::Chat { .. } => "chat",
                            ServerFrame::Welcome { resumed: true, .. } => "welcome resumed",
                            ServerFrame::Welcome { .. } => "welcome",
                            ServerFrame::PeerPresence { .. } => "peer-presence",
                            ServerFrame::PeerLeft { reason: LeaveReason::Gone, .. } => "peer-left gone",
                            _ => "other room frame",
                        }
                    } else {
                        match serde_json::from_str::<PeerJsFrame>(frame).expect("PeerJS frame").kind.as_str() {
                            "OPEN" => "OPEN",
                            _ => "other PeerJS frame",
                        }
                    };
                    *self.seen.entry(kind).or_default() += 1;
                }
                Effect::Attach { sid, .. } => assert!(!self.closed.contains(sid), "attach of closed {sid}: {fx:?}"),
                Effect::Close { sid, code, .. } => {
                    self.closed.insert(*sid);
                    let kind = match *code {
                        close::NORMAL => "close 1000",
                        close::REPLACED => "close 4000",
                        close::ALIVE_TIMEOUT => "close 4001",
                        close::JOIN_WINDOW => "close 4002",
                        _ => "close (other code)",
                    };
                    *self.seen.entry(kind).or_default() += 1;
                }
                _ => {}
            }
        }
    }
}

#[test]
fn randomized_garbage_never_panics_or_breaks_a_good_member() {
    // A short join window and grace period: the run spans ~20 s of simulated time and noisy
    // sockets churn every few hundred ms, so both must be shorter still to come into play.
    let config = Config {
        room_rate: Rate { per_sec: 50, burst: 20 },
        peerjs_rate: Rate { per_sec: 200, burst: 50 },
        join_window_ms: 300,
        grace_ms: 3_000,
        ..cfg()
    };
    let valid: Vec<String> = vec![
        join_frame("a", "tok-a", "Ann"),
        join_frame("b", "tok-b", "Bob"),
        join_frame("c", "tok-c", "Cy"),
        join_frame("c", "bad", "Cy"),
        chat_frame("hello <b>there</b>"),
        chat_frame("more"),
        media_frame(MediaPatch { screen: Some(true), ..Default::default() }),
        leave_frame(),
        r#"{"type":"HEARTBEAT"}"#.into(),
        offer("w", 1),
        offer("b", 1),
        offer("ghost", 2),
        pjf("CANDIDATE", Some("b"), Some(json!({ "candidate": "x" }))),
        pjf("ANSWER", Some("a"), None),
        r#"{"type":"LEAVE"}"#.into(),
        r#"{"type":"EXPIRE","dst":"a"}"#.into(),
    ];
    for seed in [0x9E37_79B9_7F4A_7C15u64, 42, 0xDEAD_BEEF] {
        let mut rng = XorShift(seed);
        let mut hub = Sim::new(config.clone());
        let mut t = Tally::default();
        t.rooms.extend([109, 102, 101, 103]);
        // The well-behaved member "w" (sids 9 and 109) and a noisy one, "b".
        t.check(&member_in(&mut hub, 9, 109, "w", "Good", 0));
        t.check(&member_in(&mut hub, 2, 102, "b", "Bob", 0));
        t.check(&hub.on_peerjs_open(1, "a", "tok-a", 0));
        t.check(&hub.on_peerjs_open(3, "c", "tok-c", 0));
        t.check(&hub.on_room_open(101, 0));
        t.check(&hub.on_room_open(103, 0));
        // Noise comes from every socket except w's own; noisy clients also disconnect and
        // reconnect (same or wrong token), so the room keeps changing under the garbage.
        let mut pj_socks: Vec<(Sid, &str)> = vec![(1, "a"), (2, "b"), (3, "c")];
        let mut room_socks: Vec<Sid> = vec![101, 102, 103];
        let mut next_sid: Sid = 1000;
        let mut now = 0;
        for step in 0..4000 {
            now += rng.below(10) as u64;
            let fx = match rng.below(40) {
                0 => {
                    let slot = rng.below(pj_socks.len());
                    let (old, id) = pj_socks[slot];
                    let fx = if rng.below(2) == 0 { hub.on_close(old) } else { vec![] };
                    t.check(&fx);
                    next_sid += 1;
                    pj_socks[slot] = (next_sid, id);
                    let token = if rng.below(4) == 0 { "wrong".to_string() } else { tok(id) };
                    hub.on_peerjs_open(next_sid, id, &token, now)
                }
                1 => {
                    let slot = rng.below(room_socks.len());
                    t.check(&hub.on_close(room_socks[slot]));
                    next_sid += 1;
                    room_socks[slot] = next_sid;
                    t.rooms.insert(next_sid);
                    hub.on_room_open(next_sid, now)
                }
                2 if step % 5 == 0 => {
                    let mut beats: Vec<(Sid, u64)> = vec![(9, now), (109, now)];
                    beats.extend(pj_socks.iter().map(|(s, _)| (*s, now)));
                    hub.on_alarm(now, &beats)
                }
                3 => hub.on_binary(*rng.pick(&room_socks), rng.below(MAX_FRAME_BYTES * 2), now),
                n => {
                    let sid = if n % 2 == 0 { rng.pick(&pj_socks).0 } else { *rng.pick(&room_socks) };
                    hub.on_text(sid, &random_frame(&mut rng, &valid), now)
                }
            };
            t.check(&fx);
            // Storage fails now and then; a confirmation for a record nobody asked to store
            // (a confused shell) changes nothing.
            hub.storage_fails = rng.below(50) == 0;
            if rng.below(500) == 0 {
                assert_eq!(hub.hub.chat_stored(rng.next() % 10, rng.below(2) == 0), vec![]);
            }
        }
        for kind in [
            "room error",
            "chat",
            "welcome",
            "welcome resumed",
            "peer-presence",
            "peer-left gone",
            "other room frame",
            "OPEN",
            "other PeerJS frame",
            "close 1000",
            "close 4000",
            "close 4001",
            "close 4002",
        ] {
            let n = t.seen.get(kind).copied().unwrap_or(0);
            assert!(n > 0, "seed {seed:#x}: no {kind} at all: {:?}", t.seen);
        }
        // The good member still gets its chat delivered, persisted first.
        now += 10_000;
        let fx = hub.on_text(109, &chat_frame("still works"), now);
        t.check(&fx);
        assert!(matches!(fx.first(), Some(Effect::StoreChat(r)) if r.peer_id == "w" && r.name == "Good"), "{fx:?}");
        let to_self = room_to(&fx, 109);
        assert!(
            matches!(to_self.as_slice(), [ServerFrame::Chat { message }] if message.text == "still works"),
            "seed {seed:#x}: {fx:?}"
        );
        // And its PeerJS socket still relays.
        let fx = hub.on_text(9, &offer("w", 5), now);
        assert_eq!(pj_to(&fx, 9), vec![relayed_offer("w", "w", 5)]);
        assert!(hub.peer_ids().contains(&"w".to_string()));
    }
}
