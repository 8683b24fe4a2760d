//! Live encode: how many concurrent 16 kHz L16 speaker streams (the Teams media platform's
//! unmixed audio) one core transcodes to Opus in real time, per encoder complexity.
//!
//! `cargo bench -p benches --bench encode`. Prints figures (a steady-state rate, not a
//! function timing): every stream is pushed one 20 ms payload per round, like a worker that
//! owns many calls. Timed in thread CPU time, so a loaded machine does not skew it.

use media_core::transcode::{AudioFormat, Transcoder};

fn main() {
    let streams = 200usize;
    let seconds = 5usize;
    let format = AudioFormat::L16 {
        rate: 16_000,
        channels: 1,
    };
    // Speech-like input: a vowel-ish harmonic mix with a slow envelope, plus a little noise,
    // so the encoder works as hard as on speech (digital silence would flatter it).
    let payloads: Vec<Vec<u8>> = (0..50)
        .map(|frame| {
            (0..320)
                .flat_map(|i| {
                    let t = (frame * 320 + i) as f64 / 16_000.0;
                    let env = 0.5 + 0.5 * (t * 2.0 * std::f64::consts::PI * 3.0).sin();
                    let x = env
                        * (0.5 * (t * 2.0 * std::f64::consts::PI * 180.0).sin()
                            + 0.3 * (t * 2.0 * std::f64::consts::PI * 720.0).sin()
                            + 0.2 * (t * 2.0 * std::f64::consts::PI * 2400.0).sin())
                        + 0.01 * (((i * 7919 + frame * 104_729) % 1000) as f64 / 500.0 - 1.0);
                    ((x * 12_000.0) as i16).to_be_bytes()
                })
                .collect()
        })
        .collect();
    println!("live encode: {streams} concurrent L16/16000 mono streams, {seconds} s each, 20 ms payloads");
    for complexity in [0u8, 1, 2, 3, 5] {
        let mut encoders: Vec<Transcoder> = (0..streams)
            .map(|_| Transcoder::with_complexity(format, complexity).unwrap())
            .collect();
        let mut bytes = 0usize;
        let cpu = benches::cpu_timed(|| {
            for round in 0..seconds * 50 {
                let payload = &payloads[round % payloads.len()];
                for e in &mut encoders {
                    e.push(payload, |p, _| bytes += p.len());
                }
            }
        })
        .as_secs_f64();
        let realtime = (streams * seconds) as f64 / cpu;
        println!(
            "complexity {complexity}: {:.1} us per 20 ms frame, {:.0} streams per core in real time, {:.1} kbit/s",
            cpu * 1e6 / (streams * seconds * 50) as f64,
            realtime,
            bytes as f64 * 8.0 / (streams * seconds) as f64 / 1000.0
        );
    }
}
