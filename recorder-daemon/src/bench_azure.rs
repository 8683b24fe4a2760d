//! `recorder-daemon bench-azure`: upload throughput of the Azure Blob backend (`put_file`,
//! verification included) for a few file sizes, and small recordings per second. The ceiling
//! to compare with (a plain `curl -T` of the same files) is measured by scripts/bench-azure.sh;
//! figures go to docs/azure.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use rand::{RngCore, SeedableRng};

use crate::storage::azure::{container_sas_url, AzureConfig, AzureStorage};
use crate::storage::Storage;

/// The emulator's well-known account and key (public, documented by Microsoft).
const EMU_ACCOUNT: &str = "devstoreaccount1";
const EMU_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Options of `bench-azure`.
#[derive(clap::Args)]
pub struct BenchAzureArgs {
    /// Container SAS URL to upload to (permissions racwdl).
    #[arg(long, required_unless_present = "emulator")]
    sas_url: Option<String>,
    /// Instead of --sas-url: an Azurite endpoint (http://127.0.0.1:PORT/devstoreaccount1);
    /// the container `bench` is created with the emulator's key and a SAS minted for it.
    #[arg(long, conflicts_with = "sas_url")]
    emulator: Option<String>,
    /// With --emulator: print the minted SAS URL and exit.
    #[arg(long, requires = "emulator")]
    mint_sas: bool,
    /// File sizes (K, M, G are binary multiples: 1M = 1 MiB).
    #[arg(long, default_value = "1M,50M")]
    sizes: String,
    /// Where the test files are created (kept and reused: <size>.bin).
    #[arg(long, default_value = "./bench-azure-data")]
    dir: PathBuf,
    /// Small recordings to upload for the recordings/s figure (0: skip).
    #[arg(long, default_value_t = 500)]
    small_count: usize,
    /// Size of one small recording.
    #[arg(long, default_value = "64K")]
    small_size: String,
    /// Small recordings in flight at once.
    #[arg(long, default_value_t = 8)]
    small_parallel: usize,
    /// Block size (default: the backend's).
    #[arg(long)]
    block_size: Option<String>,
    /// Blocks in flight per file (default: the backend's).
    #[arg(long)]
    concurrency: Option<usize>,
}

/// Runs the benchmark and prints one line per figure.
pub fn run(a: BenchAzureArgs) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_async(a))
}

fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("size {s:?}"))?;
    Ok(n * mul)
}

/// `dir/<label>.bin` of `size` random bytes, created unless already there; returns its MD5.
fn test_file(dir: &Path, label: &str, size: u64) -> Result<(PathBuf, [u8; 16])> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join(format!("{label}.bin"));
    if std::fs::metadata(&p).map(|m| m.len()).ok() != Some(size) {
        use std::io::Write;
        let mut rng = rand::rngs::StdRng::seed_from_u64(size);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p)?);
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill_bytes(&mut buf[..n]);
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        f.flush()?;
    }
    let mut h = Md5::new();
    let mut f = std::fs::File::open(&p)?;
    std::io::copy(&mut f, &mut h)?;
    Ok((p, h.finalize().into()))
}

fn mib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64 / secs
}

async fn run_async(a: BenchAzureArgs) -> Result<()> {
    let sas_url = match (&a.sas_url, &a.emulator) {
        (Some(u), _) => u.clone(),
        (None, Some(endpoint)) => {
            let endpoint = endpoint.trim_end_matches('/');
            let keyed = AzureStorage::connect(
                "bench-setup",
                &AzureConfig::from_account_key(EMU_ACCOUNT, EMU_KEY, "bench", Some(endpoint)),
            )
            .await?;
            keyed.create_container().await?;
            let url = container_sas_url(
                &format!("{endpoint}/bench"),
                EMU_ACCOUNT,
                EMU_KEY,
                "racwdl",
                chrono::Utc::now() + chrono::Duration::hours(2),
            )
            .map_err(anyhow::Error::msg)?;
            if a.mint_sas {
                println!("{url}");
                return Ok(());
            }
            url
        }
        (None, None) => bail!("--sas-url or --emulator is needed"),
    };
    let mut cfg = AzureConfig::from_sas_url(&sas_url);
    if let Some(bs) = &a.block_size {
        cfg.block_size = parse_size(bs)?;
    }
    if let Some(c) = a.concurrency {
        cfg.concurrency = c;
    }
    let s = Arc::new(AzureStorage::connect("bench", &cfg).await?);
    s.probe().await.context("probe")?;
    println!(
        "bench-azure: block size {} KiB, {} blocks in flight, files of at most {} KiB in one put",
        cfg.block_size >> 10,
        cfg.concurrency,
        cfg.single_put_max >> 10
    );

    for label in a.sizes.split(',').filter(|l| !l.trim().is_empty()) {
        let label = label.trim();
        let size = parse_size(label)?;
        let (path, md5) = test_file(&a.dir, label, size)?;
        // Enough repetitions to time small files, one for large ones.
        let reps = ((100u64 << 20) / size.max(1)).clamp(1, 20);
        let before = s.stats();
        let t = Instant::now();
        for i in 0..reps {
            let key = format!("bench/{label}-{i}.bin");
            s.put_file(&key, &path, size, md5).await?;
        }
        let secs = t.elapsed().as_secs_f64();
        let after = s.stats();
        println!(
            "put {label}: {reps} x {size} B in {secs:.3} s = {:.1} MiB/s (blocks {}, retries {})",
            mib_s(size * reps, secs),
            after.blocks_staged - before.blocks_staged,
            after.retries - before.retries,
        );
        for i in 0..reps {
            s.delete(&format!("bench/{label}-{i}.bin")).await?;
        }
    }

    if a.small_count > 0 {
        let size = parse_size(&a.small_size)?;
        let (path, md5) = test_file(&a.dir, &format!("small-{}", a.small_size), size)?;
        for parallel in [1, a.small_parallel.max(1)] {
            let t = Instant::now();
            futures_util::stream::iter(0..a.small_count)
                .map(|i| {
                    let (s, path) = (s.clone(), path.clone());
                    async move {
                        s.put_file(&format!("bench/small/{parallel}/{i}.ogg"), &path, size, md5)
                            .await
                    }
                })
                .buffer_unordered(parallel)
                .try_for_each(|_| async { Ok(()) })
                .await?;
            let secs = t.elapsed().as_secs_f64();
            println!(
                "small {}: {} recordings, {parallel} in flight, in {secs:.3} s = {:.0} recordings/s",
                a.small_size,
                a.small_count,
                a.small_count as f64 / secs
            );
            for o in s.list(&format!("bench/small/{parallel}/")).await? {
                s.delete(&o.key).await?;
            }
        }
    }
    Ok(())
}
