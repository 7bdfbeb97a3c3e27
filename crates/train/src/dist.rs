//! Data-parallel runs: the processes of one run and the few collectives the trainer needs.
//!
//! burn 0.22 has no multi-process collective, so a run of `K` ranks is `K` processes started by
//! an MPI launcher (`mpirun -np K vldac train ...`, or Slurm's `srun --mpi=pmix`), talking
//! through MPI (the `mpi` crate on Open MPI) behind the cargo feature `mpi`. Everything the
//! trainer exchanges goes through [`Collective`]: sums of small `f64` vectors (losses, counts),
//! sums of the flattened trainable gradients (`f32`), all-gathers of byte buffers (step records)
//! and broadcasts (a checkpoint read by rank 0).
//!
//! [`init`] picks the implementation: with no launcher in the environment, [`Single`] (one
//! process, no MPI, exactly the run of a build without the feature); under a launcher with the
//! feature, `Mpi`; under a launcher of more than one rank without it, an error (K copies of the
//! same one-process run would write the same directory).
//!
//! Faults: an error on any rank goes through [`Collective::abort`] (`MPI_Abort`), which ends
//! every rank with a non-zero status; a rank killed outright is reported by `mpirun`, which
//! then ends the others (see the crate README for the measured bound).

use std::ops::Range;

use anyhow::{Result, bail};

/// The processes of one run. Every method is collective (every rank calls it, in the same
/// order) except [`rank`](Self::rank), [`size`](Self::size) and [`abort`](Self::abort).
pub trait Collective {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Element-wise sum over ranks, in place; every rank gets the same result.
    fn all_reduce_sum_f64(&self, xs: &mut [f64]) -> Result<()>;
    /// Element-wise sum over ranks, in place; every rank gets the same result.
    fn all_reduce_sum_f32(&self, xs: &mut [f32]) -> Result<()>;
    /// Every rank's buffer, in rank order.
    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Rank `root`'s `buf` on every rank.
    fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>) -> Result<()>;
    fn barrier(&self) -> Result<()>;
    /// Ends every rank of the run with `code` (after printing why, on this rank).
    fn abort(&self, code: i32) -> !;
    /// What launched this process, for logs ("single process", "MPI rank 1 of 4").
    fn describe(&self) -> String {
        if self.size() == 1 { "single process".into() } else { format!("rank {} of {}", self.rank(), self.size()) }
    }
}

/// One process, no MPI.
#[derive(Debug, Default, Clone, Copy)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum_f64(&self, _xs: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f32(&self, _xs: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(vec![mine.to_vec()])
    }
    fn broadcast_bytes(&self, _root: usize, _buf: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The number of ranks an MPI launcher started, read from its environment: Open MPI's
/// `OMPI_COMM_WORLD_SIZE`, MPICH/Hydra's and Slurm-PMI's `PMI_SIZE`, PMIx's `PMIX_SIZE`... and
/// Slurm's `SLURM_NTASKS` when a PMI rank is set too (a plain `sbatch` shell is no launcher).
/// `None`: no launcher, a one-process run.
pub fn launcher_size() -> Option<usize> {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(n) = var("OMPI_COMM_WORLD_SIZE").or_else(|| var("PMI_SIZE")).or_else(|| var("PMIX_SIZE")) {
        return Some(n);
    }
    let has_pmi_rank = ["PMI_RANK", "PMIX_RANK"].iter().any(|k| std::env::var_os(k).is_some());
    if has_pmi_rank { var("SLURM_NTASKS") } else { None }
}

/// Whether this binary was built with the `mpi` feature.
pub const MPI_BUILT: bool = cfg!(feature = "mpi");

/// The run's processes: [`Single`] without a launcher, MPI under one (see the module docs).
/// Call once per process; with MPI, dropping the result finalises MPI.
pub fn init() -> Result<Box<dyn Collective>> {
    match launcher_size() {
        None => Ok(Box::new(Single)),
        Some(n) => init_launched(n),
    }
}

#[cfg(feature = "mpi")]
fn init_launched(_n: usize) -> Result<Box<dyn Collective>> {
    Ok(Box::new(mpi_impl::Mpi::init()?))
}

#[cfg(not(feature = "mpi"))]
fn init_launched(n: usize) -> Result<Box<dyn Collective>> {
    if n <= 1 {
        return Ok(Box::new(Single));
    }
    bail!(
        "started by an MPI launcher with {n} ranks, but this vldac was built without the `mpi` feature: \
         run `cargo xtask setup mpi` and build with `cargo build --release -p vldac --features mpi`"
    )
}

/// Environments `[r·n/K, (r+1)·n/K)` of `n`: rank `r`'s contiguous share.
pub fn share(n: usize, size: usize, rank: usize) -> Range<usize> {
    (rank * n / size)..((rank + 1) * n / size)
}

/// [`vldac_dac::update::GradSync`] over a [`Collective`]: rank `r` evaluates rows
/// [`share`]`(len, K, r)` of every micro-batch.
pub struct RankSync<'a>(pub &'a dyn Collective);

impl vldac_dac::update::GradSync for RankSync<'_> {
    fn size(&self) -> usize {
        self.0.size()
    }
    fn rows(&self, len: usize) -> Range<usize> {
        share(len, self.0.size(), self.0.rank())
    }
    fn sum_f64(&mut self, xs: &mut [f64]) -> Result<(), vldac_dac::DacError> {
        self.0.all_reduce_sum_f64(xs).map_err(|e| vldac_dac::DacError::Collective(format!("{e:#}")))
    }
    fn sum_f32(&mut self, xs: &mut [f32]) -> Result<(), vldac_dac::DacError> {
        self.0.all_reduce_sum_f32(xs).map_err(|e| vldac_dac::DacError::Collective(format!("{e:#}")))
    }
}

struct Checksum {
    crc: u32,
    values: u64,
}

impl burn::module::ModuleVisitor for Checksum {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        let data = param.val().into_data().convert::<f32>();
        self.values += data.num_elements() as u64;
        self.crc = crc32c::crc32c_append(self.crc, data.as_bytes());
    }
}

/// A checksum of `module`'s trainable parameters (CRC-32C of their f32 bits in visit order, with
/// their count): equal on every rank while the replicas are identical.
pub fn param_checksum<M: burn::module::Module>(module: &M) -> u64 {
    let mut c = Checksum { crc: 0, values: 0 };
    module.visit(&mut c);
    (c.values << 32) ^ c.crc as u64
}

/// A little-endian byte writer/reader for what ranks exchange (step records, episode stats).
#[derive(Debug, Default)]
pub struct Wire {
    pub buf: Vec<u8>,
}

impl Wire {
    pub fn u64(&mut self, x: u64) {
        self.buf.extend_from_slice(&x.to_le_bytes());
    }
    pub fn f64(&mut self, x: f64) {
        self.u64(x.to_bits());
    }
    pub fn f32s(&mut self, xs: &[f32]) {
        self.u64(xs.len() as u64);
        for x in xs {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn u32s(&mut self, xs: &[u32]) {
        self.u64(xs.len() as u64);
        for x in xs {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub fn bytes(&mut self, xs: &[u8]) {
        self.u64(xs.len() as u64);
        self.buf.extend_from_slice(xs);
    }
}

/// Reads what [`Wire`] wrote; every read checks the length.
pub struct WireReader<'a> {
    buf: &'a [u8],
    at: usize,
    /// Names the buffer in errors ("records from rank 2").
    what: String,
}

impl<'a> WireReader<'a> {
    pub fn new(buf: &'a [u8], what: impl Into<String>) -> Self {
        WireReader { buf, at: 0, what: what.into() }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.at < n {
            bail!("{}: truncated at byte {} (wanted {n} more of {})", self.what, self.at, self.buf.len());
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into()?))
    }
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }
    fn len(&mut self, width: usize) -> Result<usize> {
        let n = self.u64()? as usize;
        if n.saturating_mul(width) > self.buf.len() - self.at {
            bail!("{}: a length of {n} at byte {} runs past the end", self.what, self.at);
        }
        Ok(n)
    }
    pub fn f32s(&mut self) -> Result<Vec<f32>> {
        let n = self.len(4)?;
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    pub fn u32s(&mut self) -> Result<Vec<u32>> {
        let n = self.len(4)?;
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
    pub fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.len(1)?;
        Ok(self.take(n)?.to_vec())
    }
    pub fn is_done(&self) -> bool {
        self.at == self.buf.len()
    }
}

#[cfg(feature = "mpi")]
mod mpi_impl {
    use anyhow::{Result, bail};
    use mpi::collective::SystemOperation;
    use mpi::datatype::PartitionMut;
    use mpi::topology::{Communicator, SimpleCommunicator};
    use mpi::traits::*;

    /// MPI_COMM_WORLD of an initialised MPI (finalised on drop).
    pub struct Mpi {
        world: SimpleCommunicator,
        // Dropped last: finalises MPI.
        _universe: mpi::environment::Universe,
    }

    impl Mpi {
        pub fn init() -> Result<Self> {
            let Some(universe) = mpi::initialize() else {
                bail!("MPI was already initialised in this process");
            };
            let world = universe.world();
            Ok(Mpi { world, _universe: universe })
        }
    }

    impl super::Collective for Mpi {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn size(&self) -> usize {
            self.world.size() as usize
        }
        fn all_reduce_sum_f64(&self, xs: &mut [f64]) -> Result<()> {
            let send = xs.to_vec();
            self.world.all_reduce_into(&send[..], xs, SystemOperation::sum());
            Ok(())
        }
        fn all_reduce_sum_f32(&self, xs: &mut [f32]) -> Result<()> {
            // MPI counts are i32: reduce in chunks below 2^31 elements.
            const CHUNK: usize = 1 << 30;
            for part in xs.chunks_mut(CHUNK) {
                let send = part.to_vec();
                self.world.all_reduce_into(&send[..], part, SystemOperation::sum());
            }
            Ok(())
        }
        fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
            let k = self.size();
            let Ok(len) = i32::try_from(mine.len()) else {
                bail!("rank {}: {} bytes to all-gather is over MPI's 2 GiB count", self.rank(), mine.len());
            };
            let mut lens = vec![0i32; k];
            self.world.all_gather_into(&len, &mut lens[..]);
            let mut displs = Vec::with_capacity(k);
            let mut total = 0i64;
            for &l in &lens {
                displs.push(total as i32);
                total += l as i64;
            }
            if total > i32::MAX as i64 {
                bail!("all-gather of {total} bytes is over MPI's 2 GiB count");
            }
            let mut all = vec![0u8; total as usize];
            {
                let mut part = PartitionMut::new(&mut all[..], &lens[..], &displs[..]);
                self.world.all_gather_varcount_into(mine, &mut part);
            }
            Ok(lens.iter().zip(&displs).map(|(&l, &d)| all[d as usize..(d + l) as usize].to_vec()).collect())
        }
        fn broadcast_bytes(&self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
            let root = self.world.process_at_rank(root as i32);
            let mut len = buf.len() as u64;
            root.broadcast_into(&mut len);
            buf.resize(len as usize, 0);
            for part in buf.chunks_mut(1 << 30) {
                root.broadcast_into(part);
            }
            Ok(())
        }
        fn barrier(&self) -> Result<()> {
            self.world.barrier();
            Ok(())
        }
        fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
        fn describe(&self) -> String {
            format!(
                "MPI rank {} of {} ({})",
                self.rank(),
                self.size(),
                mpi::environment::processor_name().unwrap_or_default()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_env_once_in_order() {
        for n in 1..20 {
            for k in 1..=n {
                let mut next = 0;
                for r in 0..k {
                    let s = share(n, k, r);
                    assert_eq!(s.start, next);
                    next = s.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn wire_round_trips_and_refuses_truncation() {
        let mut w = Wire::default();
        w.u64(7);
        w.f64(-1.5);
        w.f32s(&[1.0, f32::NAN]);
        w.u32s(&[3, 4, 5]);
        w.bytes(b"abc");
        let mut r = WireReader::new(&w.buf, "test");
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.f64().unwrap(), -1.5);
        let f = r.f32s().unwrap();
        assert_eq!(f[0], 1.0);
        assert!(f[1].is_nan());
        assert_eq!(r.u32s().unwrap(), vec![3, 4, 5]);
        assert_eq!(r.bytes().unwrap(), b"abc");
        assert!(r.is_done());
        let mut r = WireReader::new(&w.buf[..20], "records from rank 1");
        r.u64().unwrap();
        r.f64().unwrap();
        let err = r.f32s().unwrap_err().to_string();
        assert!(err.contains("records from rank 1"), "{err}");
    }

    #[test]
    fn no_launcher_is_a_single_process() {
        // The test harness runs without mpirun.
        if launcher_size().is_none() {
            let c = init().unwrap();
            assert_eq!((c.rank(), c.size()), (0, 1));
        }
    }
}
