//! Stable-toolchain fuzzing of the SPDY parser (the cargo-fuzz target in cri-server/fuzz
//! needs nightly): random and mutated frames must give frames or clean errors, never a
//! panic, and a live session fed garbage must end or carry on, never hang.

use std::time::Duration;

use berth_cri::streaming::spdy::frame::{FLAG_FIN, Frame, encode_frame};
use berth_cri::streaming::spdy::headers::decode_block;
use berth_cri::streaming::spdy::{HeaderDecoder, HeaderEncoder, Role, Session, decode_all};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// xorshift64*: deterministic, so a failure replays with the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A valid session byte stream: a SYN_STREAM, data, settings, ping, window update, reset.
fn corpus() -> Vec<u8> {
    let mut enc = HeaderEncoder::new();
    let mut out = Vec::new();
    let frames = [
        Frame::SynStream {
            stream_id: 1,
            assoc_id: 0,
            priority: 0,
            flags: 0,
            block: enc
                .encode(&vec![("streamtype".into(), "stdin".into())])
                .into(),
        },
        Frame::SynStream {
            stream_id: 3,
            assoc_id: 0,
            priority: 0,
            flags: 0,
            block: enc
                .encode(&vec![
                    ("streamtype".into(), "data".into()),
                    ("port".into(), "80".into()),
                ])
                .into(),
        },
        Frame::Data {
            stream_id: 1,
            flags: 0,
            payload: Bytes::from_static(b"hello"),
        },
        Frame::Settings {
            flags: 0,
            entries: vec![(0, 7, 65536)],
        },
        Frame::Ping { id: 1 },
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 1000,
        },
        Frame::Data {
            stream_id: 3,
            flags: FLAG_FIN,
            payload: Bytes::new(),
        },
        Frame::RstStream {
            stream_id: 1,
            status: 5,
        },
    ];
    for f in &frames {
        encode_frame(f, &mut out).unwrap();
    }
    out
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    match rng.below(5) {
        0 => {
            // Random bytes.
            let n = rng.below(512);
            v = (0..n).map(|_| rng.next() as u8).collect();
        }
        1 => {
            // Truncate.
            let n = rng.below(v.len() + 1);
            v.truncate(n);
        }
        _ => {
            // Flip, overwrite or insert a few bytes.
            for _ in 0..1 + rng.below(8) {
                if v.is_empty() {
                    break;
                }
                let i = rng.below(v.len());
                match rng.below(3) {
                    0 => v[i] ^= 1 << rng.below(8),
                    1 => v[i] = rng.next() as u8,
                    _ => v.insert(i, rng.next() as u8),
                }
            }
        }
    }
    v
}

#[test]
fn parser_survives_random_and_mutated_input() {
    let base = corpus();
    let (frames, err) = decode_all(&base);
    assert_eq!(err, None);
    assert_eq!(frames.len(), 8);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..30_000 {
        let input = mutate(&mut rng, &base);
        let _ = decode_all(&input);
        let _ = decode_block(&input);
        let _ = HeaderDecoder::new().decode(&input);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_session_survives_garbage() {
    let base = corpus();
    let mut rng = Rng(42);
    for _ in 0..300 {
        let input = mutate(&mut rng, &base);
        let (mut client, server_io) = tokio::io::duplex(1 << 16);
        let server = Session::new(server_io, Role::Server, Vec::new());
        client.write_all(&input).await.unwrap();
        client.shutdown().await.unwrap();
        // Whatever it makes of the input, the session ends once the peer is gone.
        let drain = async {
            let mut sink = [0u8; 4096];
            while let Ok(n) = client.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let accept = async {
            while let Some(s) = server.accept().await {
                drop(s);
            }
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(drain, accept, server.closed());
        })
        .await
        .expect("session did not end after garbage input");
    }
}
