//! The agent's socket frames: bytes one peer sends on one connection, through the loop every
//! accepted connection runs after the peer check (`agent::server::fuzzing::serve`: the 64 KiB
//! frame reader, `protocol::decode_request`, the dispatcher) on an agent with no vault yet, and
//! each line on its own through `decode_request`.
//!
//! Properties (AGENT-3, AGENT-4): no panic, no hang; every answer is one protocol-1 JSON object
//! on one line of bounded size, at most one per frame sent, and an answer that closes the
//! connection is the last; error messages are one printable line; a decoded request encodes and
//! decodes to the same frame; no answer, error message or `Debug` shows a passphrase sent in an
//! `unlock` frame; the memory allocated while serving one connection stays under a fixed bound
//! whatever the peer sends.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use authdeck::agent::protocol::{self, MAX_FRAME, Request, VERSION};
use authdeck::agent::server::fuzzing::serve;
use authdeck_fuzz::distinctive;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Bytes the agent may hold for one connection at its peak, whatever the peer sends: the frame
/// (at most 64 KiB, so a buffer of at most 128 KiB), the reader's buffer, and the decoder's
/// structures for one frame. A peer must not be able to make the agent allocate more per
/// connection by choosing what it sends.
const MEMORY_BOUND: usize = 512 * 1024;

/// Longest answer frame expected from an agent with no vault (paths, a one-line message).
const MAX_ANSWER: usize = 8 * 1024;

/// Counts the bytes the process has allocated, and the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let secrets = passphrases(data);

    // The whole input as one connection.
    let frames_sent = data.split_inclusive(|b| *b == b'\n').count();
    let mut answers = 0usize;
    let mut closed = false;
    let mut shown: Vec<&str> = Vec::new();
    let mut check = |line: &[u8]| {
        assert!(!closed, "an answer after one that closes the connection");
        answers += 1;
        assert!(line.len() < MAX_ANSWER, "answer of {} bytes", line.len());
        let text = std::str::from_utf8(line).expect("answers are UTF-8");
        for s in &secrets {
            if text.contains(s.as_str()) && !shown.contains(&s.as_str()) {
                shown.push(s.as_str());
            }
        }
        let r = protocol::decode_response(line).expect("answers are protocol frames");
        assert_eq!(r.v, VERSION);
        match &r.error {
            Some(f) => {
                assert!(!r.ok);
                one_line(&f.message);
                closed = f.code.closes();
            }
            None => assert!(r.ok, "a refusal without an error"),
        }
        assert!(
            r.token.is_none() && r.vars.is_none(),
            "a token with no vault"
        );
    };
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let tail = serve(data, &mut check);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    if std::env::var_os("AGENT_FRAME_PEAK").is_some() {
        // For docs/fuzzing.md: replay a corpus with this set to see the largest peaks.
        eprintln!(
            "agent_frame peak {peak} bytes for {} input bytes",
            data.len()
        );
    }
    assert!(tail.is_empty(), "an answer without its newline");
    assert!(
        answers <= frames_sent,
        "{answers} answers to {frames_sent} frames"
    );
    assert!(
        data.is_empty() || answers >= 1,
        "a connection that sent bytes got no answer"
    );
    assert!(
        peak <= MEMORY_BOUND,
        "serving {} bytes allocated {peak} bytes at the peak",
        data.len()
    );
    // A passphrase seen in an answer may be a coincidence with the agent's fixed wording ("not
    // a JSON object on one line"): it leaked only if another passphrase in its place shows too.
    for s in shown {
        let Some((other, input)) = swapped_input(data, s) else {
            continue;
        };
        serve(&input, |line: &[u8]| {
            let text = String::from_utf8_lossy(line);
            assert!(
                !text.contains(&other),
                "an answer shows a passphrase: {text}"
            );
        });
    }

    // Each frame on its own through the decoder.
    for line in data.split(|b| *b == b'\n').take(16) {
        if line.len() >= MAX_FRAME {
            continue;
        }
        match protocol::decode_request(line) {
            Ok(req) => {
                let debug = format!("{req:?}");
                for s in secrets.iter().filter(|s| debug.contains(s.as_str())) {
                    if let Some((other, line)) = swapped_input(line, s)
                        && let Ok(req) = protocol::decode_request(&line)
                    {
                        assert!(
                            !format!("{req:?}").contains(&other),
                            "Debug shows a passphrase"
                        );
                    }
                }
                let frame = protocol::encode_request(&req);
                assert_eq!(frame.last(), Some(&b'\n'));
                let again = protocol::decode_request(&frame[..frame.len() - 1])
                    .expect("an encoded request decodes");
                assert_eq!(
                    protocol::encode_request(&again),
                    frame,
                    "a request changed in a round trip"
                );
                if let Request::Unlock { .. } = req {
                    // Only the verb and the passphrase field exist.
                    let v: Value = serde_json::from_slice(&frame).expect("JSON");
                    assert_eq!(v.as_object().map(|o| o.len()), Some(3));
                }
            }
            Err(f) => {
                one_line(&f.message);
                for s in secrets.iter().filter(|s| f.message.contains(s.as_str())) {
                    if let Some((other, line)) = swapped_input(line, s)
                        && let Err(f) = protocol::decode_request(&line)
                    {
                        assert!(!f.message.contains(&other), "an error shows a passphrase");
                    }
                }
            }
        }
    }
});

/// `data` with every raw occurrence of passphrase `s` replaced by another one of the same
/// length (each ASCII letter shifted by one), and that other passphrase; `None` when `s` does
/// not occur as raw bytes (written with JSON escapes).
fn swapped_input(data: &[u8], s: &str) -> Option<(String, Vec<u8>)> {
    let other: String = s
        .chars()
        .map(|c| match c {
            'z' => 'a',
            'Z' => 'A',
            c if c.is_ascii_alphabetic() => char::from(c as u8 + 1),
            c => c,
        })
        .collect();
    let (from, to) = (s.as_bytes(), other.as_bytes());
    if from.is_empty() || from == to {
        return None;
    }
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    let mut found = false;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
            found = true;
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    found.then_some((other, out))
}

fn one_line(message: &str) {
    assert!(!message.is_empty() && message.len() < 1024, "{message:?}");
    assert!(
        !message.chars().any(char::is_control),
        "a control character in {message:?}"
    );
}

/// Distinctive passphrases sent in the input's frames (strings under any `passphrase` key, at
/// any depth, or given as a number), which must never come back.
fn passphrases(data: &[u8]) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>, all: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    all.push(k.clone());
                    if k == "passphrase" {
                        match v {
                            Value::String(s) => out.push(s.clone()),
                            Value::Number(n) => out.push(n.to_string()),
                            _ => {}
                        }
                    }
                    walk(v, out, all);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out, all)),
            Value::String(s) => all.push(s.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut others = Vec::new();
    for line in data.split(|b| *b == b'\n').take(16) {
        if let Ok(v) = serde_json::from_slice::<Value>(line) {
            let mut found = Vec::new();
            let mut all = Vec::new();
            walk(&v, &mut found, &mut all);
            out.extend(found.iter().cloned());
            // A value that also appears as another string (a path, an account) may be echoed
            // under that name legitimately.
            others.extend(all.into_iter().filter(|s| !found.contains(s)));
        }
    }
    out.retain(|s| distinctive(s) && !others.iter().any(|o| o.contains(s.as_str())));
    out
}
