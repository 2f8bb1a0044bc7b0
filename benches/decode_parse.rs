//! Per-message cost of the capture and SIP stages, on real sipp traffic from pcaps/:
//! link/IP/UDP decode with SIP framing, the borrowed SIP parser alone, and both together.
//! Run: `cargo bench --bench decode_parse`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shaken_sensor::capture::decode::{DecodeSettings, Decoder};
use shaken_sensor::capture::source::packet_time;
use shaken_sensor::clock::Timestamp;
use shaken_sensor::sip::message::ParseLimits;
use shaken_sensor::sip::parse::parse;

fn frames(name: &str) -> (i32, Vec<(Timestamp, Vec<u8>)>) {
    let path = format!("{}/pcaps/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut cap = pcap::Capture::from_file(&path).expect("sample capture");
    let linktype = cap.get_datalink().0;
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        out.push((packet_time(p.header), p.data.to_vec()));
    }
    (linktype, out)
}

fn settings() -> DecodeSettings {
    DecodeSettings::new(&[5060, 5080], false, 65535)
}

fn messages(linktype: i32, frames: &[(Timestamp, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut d = Decoder::new(settings());
    let mut out = Vec::new();
    for (ts, f) in frames {
        d.decode(linktype, *ts, f, &mut |p| out.push(p.bytes.to_vec()));
    }
    out
}

fn bench(c: &mut Criterion) {
    let limits = ParseLimits::default();
    for name in [
        "udp-answered.pcap",
        "udp-fragmented.pcap",
        "tcp-answered.pcap",
    ] {
        let (lt, frames) = frames(name);
        let msgs = messages(lt, &frames);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(msgs.len() as u64));
        g.bench_function("decode+frame", |b| {
            b.iter(|| {
                let mut d = Decoder::new(settings());
                let mut n = 0usize;
                for (ts, f) in &frames {
                    d.decode(lt, *ts, f, &mut |p| n += p.bytes.len());
                }
                black_box(n)
            })
        });
        g.bench_function("parse", |b| {
            b.iter(|| {
                let mut n = 0usize;
                for m in &msgs {
                    n += parse(black_box(m), &limits).map_or(0, |m| m.header_count as usize);
                }
                black_box(n)
            })
        });
        g.bench_function("decode+frame+parse", |b| {
            b.iter(|| {
                let mut d = Decoder::new(settings());
                let mut n = 0usize;
                for (ts, f) in &frames {
                    d.decode(lt, *ts, f, &mut |p| {
                        n += parse(p.bytes, &limits).map_or(0, |m| m.header_count as usize)
                    });
                }
                black_box(n)
            })
        });
        g.finish();
    }
    let (lt, frames) = frames("udp-answered.pcap");
    let invite = messages(lt, &frames)
        .into_iter()
        .find(|m| m.starts_with(b"INVITE"))
        .unwrap();
    c.bench_function("parse one INVITE", |b| {
        b.iter(|| parse(black_box(&invite), &limits).map(|m| m.header_count))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
