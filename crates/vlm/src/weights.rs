//! Checkpoint I/O in the HF key layout (`model.layers.N...`, `visual...`, `lm_head.weight`).
//!
//! Loading goes through [`WeightSource`]: each module asks for its tensors by HF name and HF
//! shape, so a missing or mis-shaped tensor fails at the exact name with both shapes, and
//! tensors left over at the end are reported as extra. Sources: safetensors (single file or
//! sharded with `model.safetensors.index.json`) and seeded random weights (a model without any
//! files).
//!
//! Base weights are read straight into the precision the model runs in ([`WeightSource::dtype`]).
//! A tensor stored in that precision is a view of the memory-mapped file (copy on write, read
//! when first used, as transformers' loading is); the others are read block by block with
//! positioned reads (the file's pages are not mapped), converted, and transposed where the
//! layout asks for it in the same pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::tensor::{AllocationProperty, Bytes, DType};
use half::{bf16, f16};
use memmap2::Mmap;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use safetensors::Dtype;
use safetensors::tensor::{Metadata, TensorView};

use crate::error::{Result, VlmError};

/// Row-major f32 host tensor in HF layout.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A tensor's little-endian bytes in `dtype` (row-major, `shape`), in an allocation aligned for
/// its elements (see [`zeroed_bytes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub bytes: Bytes,
}

impl RawTensor {
    /// As burn tensor data (no copy).
    pub fn into_data(self) -> burn::tensor::TensorData {
        burn::tensor::TensorData::from_bytes(self.bytes, self.shape, self.dtype)
    }

    /// `[r, c] -> [c, r]` (torch's `[out, in]` Linear layout to burn's `[in, out]`).
    pub fn transposed(self) -> RawTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let size = self.dtype.size();
        let mut bytes = zeroed_bytes(size, r * c);
        match size {
            2 => transpose_elems::<2>(&self.bytes, r, c, &mut bytes),
            4 => transpose_elems::<4>(&self.bytes, r, c, &mut bytes),
            _ => transpose_elems::<8>(&self.bytes, r, c, &mut bytes),
        }
        RawTensor { shape: vec![c, r], dtype: self.dtype, bytes }
    }
}

/// `n` zeroed elements of `size` bytes as burn's [`Bytes`], allocated as `u16`/`u32`/`u64` so
/// that burn takes them without a copy (it copied every `Vec<u8>` into an aligned allocation: a
/// second pass over the 8.8 GB of an f32 2B load). Advising these buffers onto transparent huge
/// pages (`MADV_HUGEPAGE`) made the f32 2B load slower here (11–14 s against 7–10 s: the kernel
/// compacts memory on the fault), so they keep 4 KiB pages.
pub fn zeroed_bytes(size: usize, n: usize) -> Bytes {
    match size {
        1 => Bytes::from_elems(vec![0u8; n]),
        2 => Bytes::from_elems(vec![0u16; n]),
        4 => Bytes::from_elems(vec![0u32; n]),
        _ => Bytes::from_elems(vec![0u64; n * size / 8]),
    }
}

/// Blocked transpose of an `[r, c]` matrix of `N`-byte elements, in parallel over blocks of output
/// rows (the 2B checkpoint's 200-odd projections went through one thread at load).
fn transpose_elems<const N: usize>(bytes: &[u8], r: usize, c: usize, out: &mut [u8]) {
    let (src, _) = bytes.as_chunks::<N>();
    let (out, _) = out.as_chunks_mut::<N>();
    const B: usize = 32;
    if r > 0 {
        out.par_chunks_mut(B * r).enumerate().for_each(|(t, block)| {
            let j0 = t * B;
            let cols = block.len() / r;
            for i0 in (0..r).step_by(B) {
                for jj in 0..cols {
                    let dst = &mut block[jj * r..][i0..(i0 + B).min(r)];
                    for (k, d) in dst.iter_mut().enumerate() {
                        *d = src[(i0 + k) * c + j0 + jj];
                    }
                }
            }
        });
    }
}

/// Elements per parallel task of a dtype conversion.
const CONVERT_CHUNK: usize = 1 << 16;

/// Whether values stored as `from` are already in the precision `to` (their bytes are used as
/// they are).
fn same_precision(from: Dtype, to: DType) -> bool {
    matches!((from, to), (Dtype::F32, DType::F32) | (Dtype::BF16, DType::BF16) | (Dtype::F16, DType::F16))
}

/// Errors, before any work, unless values stored as `from` can be loaded as `to`.
fn check_conversion(from: Dtype, to: DType, name: &str, file: &str) -> Result<()> {
    to_f32(from, &[], name, file)?;
    check_target(to, name, file)
}

/// `src` stored as `from` into `out` as `to` (`out` holds as many elements), on this thread.
fn convert_into(from: Dtype, src: &[u8], to: DType, out: &mut [u8], name: &str, file: &str) -> Result<()> {
    match (from, to) {
        _ if same_precision(from, to) => out.copy_from_slice(src),
        // The hub's checkpoints are bf16: widening is a 16-bit shift, [lo, hi] -> [0, 0, lo, hi].
        (Dtype::BF16, DType::F32) => {
            for (o, i) in out.chunks_exact_mut(4).zip(src.chunks_exact(2)) {
                o.copy_from_slice(&[0, 0, i[0], i[1]]);
            }
        }
        _ => encode_f32_into(&to_f32(from, src, name, file)?, to, out, name, file)?,
    }
    Ok(())
}

/// Source rows per task of a transposing read: a block of the widest projection (8,960 bf16
/// columns, or 18,944 in 7B) stays in L2 while its columns are scattered.
const TRANSPOSE_ROWS: usize = 32;

/// Row `i` of a `rows x c` block of `N`-byte elements into column `i0 + i` of an `[c, r]` matrix.
///
/// # Safety
/// `out` points to `c * r` elements; columns `i0 .. i0 + rows` are written by this caller only.
unsafe fn scatter_block<const N: usize>(block: &[u8], rows: usize, c: usize, r: usize, i0: usize, out: *mut u8) {
    let (src, _) = block.as_chunks::<N>();
    for j in 0..c {
        // SAFETY: row j of the output, columns i0 .. i0 + rows (the caller's).
        let dst = unsafe { std::slice::from_raw_parts_mut(out.add((j * r + i0) * N).cast::<[u8; N]>(), rows) };
        for (i, d) in dst.iter_mut().enumerate() {
            *d = src[i * c + j];
        }
    }
}

/// Errors unless base weights can be held in `to` (f32, bf16 or f16).
fn check_target(to: DType, name: &str, file: &str) -> Result<()> {
    match to {
        DType::F32 | DType::BF16 | DType::F16 => Ok(()),
        other => Err(VlmError::Weights {
            file: file.into(),
            msg: format!("cannot load `{name}` as {other:?}; only f32/bf16/f16 are supported"),
        }),
    }
}

/// f32 values as little-endian `to` into `out` (`values.len()` elements of `to`).
fn encode_f32_into(values: &[f32], to: DType, out: &mut [u8], name: &str, file: &str) -> Result<()> {
    match to {
        DType::F32 => out.chunks_exact_mut(4).zip(values).for_each(|(o, v)| o.copy_from_slice(&v.to_le_bytes())),
        DType::BF16 => {
            out.chunks_exact_mut(2).zip(values).for_each(|(o, v)| o.copy_from_slice(&bf16::from_f32(*v).to_le_bytes()))
        }
        DType::F16 => {
            out.chunks_exact_mut(2).zip(values).for_each(|(o, v)| o.copy_from_slice(&f16::from_f32(*v).to_le_bytes()))
        }
        _ => return check_target(to, name, file),
    }
    Ok(())
}

/// `HostTensor` (f32) as raw bytes in `to` (encoded once, no f32 byte round trip).
fn host_to_raw(t: HostTensor, to: DType, name: &str) -> Result<RawTensor> {
    check_target(to, name, "<in memory>")?;
    let mut bytes = zeroed_bytes(to.size(), t.data.len());
    bytes
        .par_chunks_mut(CONVERT_CHUNK * to.size())
        .zip(t.data.par_chunks(CONVERT_CHUNK))
        .try_for_each(|(o, v)| encode_f32_into(v, to, o, name, "<in memory>"))?;
    Ok(RawTensor { shape: t.shape, dtype: to, bytes })
}

/// Where a model's parameters come from.
pub trait WeightSource {
    /// The tensor `name` (HF naming and layout), which must have exactly `shape`, as f32.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor>;
    /// The tensor `name` in the precision base weights load in ([`Self::dtype`]).
    fn take_raw(&mut self, name: &str, shape: &[usize]) -> Result<RawTensor> {
        let dtype = self.dtype();
        host_to_raw(self.take(name, shape)?, dtype, name)
    }
    /// The matrix `name` (`shape = [r, c]` as stored) transposed to `[c, r]`, as [`Self::take_raw`].
    fn take_raw_transposed(&mut self, name: &str, shape: &[usize]) -> Result<RawTensor> {
        Ok(self.take_raw(name, shape)?.transposed())
    }
    /// The precision frozen base weights are loaded in (f32 unless set).
    fn dtype(&self) -> DType {
        DType::F32
    }
    /// Whether `name` exists (used for optional tensors such as a tied `lm_head.weight`).
    fn contains(&self, name: &str) -> bool;
    /// Marks `name` as deliberately unused (e.g. `lm_head.weight` of a tied checkpoint).
    fn skip(&mut self, name: &str);
    /// Errors if tensors were left unused.
    fn finish(&mut self) -> Result<()>;
}

/// Maps the transformers >= 5 in-memory names onto the saved (legacy) layout.
pub fn normalize_key(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("model.language_model.") {
        format!("model.{rest}")
    } else if let Some(rest) = key.strip_prefix("model.visual.") {
        format!("visual.{rest}")
    } else if let Some(rest) = key.strip_prefix("model.lm_head.") {
        format!("lm_head.{rest}")
    } else {
        key.to_string()
    }
}

struct Shard {
    path: PathBuf,
    file: std::fs::File,
    /// The whole file mapped (read-only): the header, and the tensors used as stored.
    map: bytes::Bytes,
    header_len: usize,
    meta: Metadata,
}

/// Where a stored tensor's bytes are.
struct Located {
    shard: usize,
    dtype: Dtype,
    /// Byte offset in the file.
    start: usize,
    len: usize,
    file: String,
}

/// Memory-mapped safetensors checkpoint (one file, or the shards of an index).
pub struct SafetensorsWeights {
    shards: Vec<Shard>,
    /// normalized key -> (shard, key as stored)
    index: HashMap<String, (usize, String)>,
    used: HashSet<String>,
    label: String,
    dtype: DType,
}

impl SafetensorsWeights {
    /// Opens `dir/model.safetensors.index.json` if present, else `dir/model.safetensors`,
    /// else every `*.safetensors` in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        if index.exists() {
            return Self::open_index(&index);
        }
        let single = dir.join("model.safetensors");
        if single.exists() {
            return Self::open_files(&[single]);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| VlmError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && !p.ends_with("adapter_model.safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(VlmError::Weights {
                file: dir.display().to_string(),
                msg: "no model.safetensors, model.safetensors.index.json or *.safetensors found".into(),
            });
        }
        Self::open_files(&files)
    }

    /// Opens the shards listed in a `model.safetensors.index.json` (`weight_map`).
    pub fn open_index(index: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(|e| VlmError::io(index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| VlmError::Weights { file: index.display().to_string(), msg: format!("not JSON: {e}") })?;
        let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| VlmError::Weights {
            file: index.display().to_string(),
            msg: "missing object field `weight_map`".into(),
        })?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut files: Vec<String> = map.values().filter_map(|f| f.as_str().map(String::from)).collect();
        files.sort();
        files.dedup();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        let me = Self::open_files(&paths)?;
        // Every key the index promises must be in the shard it names.
        for (key, file) in map {
            let nk = normalize_key(key);
            match me.index.get(&nk) {
                Some((s, _)) if me.shards[*s].path.file_name().and_then(|f| f.to_str()) == file.as_str() => {}
                _ => {
                    return Err(VlmError::Weights {
                        file: index.display().to_string(),
                        msg: format!("`{key}` is listed in shard {file} but not stored there"),
                    });
                }
            }
        }
        Ok(me)
    }

    pub fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::new();
        let mut index = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = std::fs::File::open(path).map_err(|e| VlmError::io(path, e))?;
            // SAFETY: the checkpoint is opened read-only; as with any mmap, another process
            // truncating it while we read is outside what we can guard against.
            let map = bytes::Bytes::from_owner(unsafe { Mmap::map(&file) }.map_err(|e| VlmError::io(path, e))?);
            let (header_len, meta) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| VlmError::Weights {
                file: path.display().to_string(),
                msg: format!("bad safetensors: {e}"),
            })?;
            for key in meta.tensors().keys() {
                let nk = normalize_key(key);
                if let Some((other, _)) = index.insert(nk.clone(), (i, key.clone())) {
                    return Err(VlmError::Weights {
                        file: path.display().to_string(),
                        msg: format!("tensor `{key}` is also stored in {}", paths[other].display()),
                    });
                }
            }
            shards.push(Shard { path: path.clone(), file, map, header_len, meta });
        }
        let label = match paths {
            [one] => one.display().to_string(),
            _ => format!("{} shards in {}", paths.len(), paths[0].parent().unwrap_or(Path::new(".")).display()),
        };
        Ok(SafetensorsWeights { shards, index, used: HashSet::new(), label, dtype: DType::F32 })
    }

    /// Loads base weights in `dtype` (f32, bf16 or f16) instead of f32.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Where `name` is stored, checked against `shape`; marks it used.
    fn locate(&mut self, name: &str, shape: &[usize]) -> Result<Located> {
        let Some((s, stored)) = self.index.get(name) else {
            return Err(VlmError::MissingTensor {
                name: name.into(),
                expected: shape.to_vec(),
                file: self.label.clone(),
            });
        };
        let shard = &self.shards[*s];
        let file = shard.path.display().to_string();
        let info = shard.meta.info(stored).ok_or_else(|| VlmError::Weights {
            file: file.clone(),
            msg: format!("`{stored}` vanished from the header"),
        })?;
        if info.shape != shape {
            return Err(VlmError::Shape {
                name: name.into(),
                expected: shape.to_vec(),
                found: info.shape.clone(),
                file,
            });
        }
        let start = 8 + shard.header_len + info.data_offsets.0;
        let len = info.data_offsets.1.saturating_sub(info.data_offsets.0);
        if start + len > shard.map.len() {
            return Err(VlmError::Weights { file, msg: format!("`{stored}` points past the end of the file") });
        }
        let (shard, dtype) = (*s, info.dtype);
        self.used.insert(name.to_string());
        Ok(Located { shard, dtype, start, len, file })
    }

    /// A copy of the stored bytes, aligned for the stored elements (so a tensor kept as stored
    /// goes to burn uncopied).
    fn read(&self, at: &Located) -> Result<Bytes> {
        let shard = &self.shards[at.shard];
        let size = (at.dtype.bitsize() / 8).max(1);
        let mut bytes = zeroed_bytes(size, at.len / size);
        read_at(&shard.file, &shard.map, at.start, &mut bytes).map_err(|e| VlmError::io(&shard.path, e))?;
        Ok(bytes)
    }

    /// Names (normalized) of all stored tensors.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index.keys().cloned().collect();
        v.sort();
        v
    }
}

fn to_f32(dtype: Dtype, bytes: &[u8], name: &str, file: &str) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        other => {
            return Err(VlmError::Weights {
                file: file.into(),
                msg: format!("tensor `{name}` has dtype {other:?}; only f32/f64/bf16/f16 are supported"),
            });
        }
    })
}

/// Reads `buf.len()` bytes at `offset` (a positioned read: the file's pages are not mapped).
#[cfg(unix)]
fn read_at(file: &std::fs::File, _map: &[u8], offset: usize, buf: &mut [u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset as u64)
}

#[cfg(not(unix))]
fn read_at(_file: &std::fs::File, map: &[u8], offset: usize, buf: &mut [u8]) -> std::io::Result<()> {
    buf.copy_from_slice(&map[offset..offset + buf.len()]);
    Ok(())
}

impl WeightSource for SafetensorsWeights {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let at = self.locate(name, shape)?;
        let data = to_f32(at.dtype, &self.read(&at)?, name, &at.file)?;
        Ok(HostTensor { shape: shape.to_vec(), data })
    }
    fn take_raw(&mut self, name: &str, shape: &[usize]) -> Result<RawTensor> {
        let at = self.locate(name, shape)?;
        if same_precision(at.dtype, self.dtype) && at.start.is_multiple_of(self.dtype.size()) {
            // A view of the mapped file: no read now, the pages come in when first used; a write
            // copies (copy on write), so the file is never changed.
            let view = self.shards[at.shard].map.slice(at.start..at.start + at.len);
            let bytes = Bytes::from_shared(view, AllocationProperty::File);
            return Ok(RawTensor { shape: shape.to_vec(), dtype: self.dtype, bytes });
        }
        // Read and converted in chunks, in parallel: no copy of the stored bytes in between.
        let to = self.dtype;
        check_conversion(at.dtype, to, name, &at.file)?;
        let (n_in, n_out) = ((at.dtype.bitsize() / 8).max(1), to.size());
        let shard = &self.shards[at.shard];
        let mut bytes = zeroed_bytes(n_out, at.len / n_in);
        bytes.par_chunks_mut(CONVERT_CHUNK * n_out).enumerate().try_for_each_init(Vec::new, |raw, (i, o)| {
            raw.resize(o.len() / n_out * n_in, 0);
            read_at(&shard.file, &shard.map, at.start + i * CONVERT_CHUNK * n_in, raw)
                .map_err(|e| VlmError::io(&shard.path, e))?;
            convert_into(at.dtype, raw, to, o, name, &at.file)
        })?;
        Ok(RawTensor { shape: shape.to_vec(), dtype: to, bytes })
    }
    fn take_raw_transposed(&mut self, name: &str, shape: &[usize]) -> Result<RawTensor> {
        let at = self.locate(name, shape)?;
        let to = self.dtype;
        check_conversion(at.dtype, to, name, &at.file)?;
        let &[r, c] = shape else {
            return Err(VlmError::Weights { file: at.file, msg: format!("`{name}` is not a matrix: {shape:?}") });
        };
        let (n_in, n_out) = ((at.dtype.bitsize() / 8).max(1), to.size());
        let shard = &self.shards[at.shard];
        let mut out = zeroed_bytes(n_out, r * c);
        let dst = crate::cpu_bf16::SharedOut(out.as_mut_ptr());
        // Blocks of source rows: each read, converted and scattered into its output columns in
        // cache, one pass over the output instead of a read, a conversion and a transpose.
        (0..r.div_ceil(TRANSPOSE_ROWS)).into_par_iter().try_for_each_init(
            || (Vec::new(), Vec::new()),
            |(raw, conv): &mut (Vec<u8>, Vec<u8>), b| -> Result<()> {
                let i0 = b * TRANSPOSE_ROWS;
                let rows = TRANSPOSE_ROWS.min(r - i0);
                raw.resize(rows * c * n_in, 0);
                conv.resize(rows * c * n_out, 0);
                read_at(&shard.file, &shard.map, at.start + i0 * c * n_in, raw)
                    .map_err(|e| VlmError::io(&shard.path, e))?;
                convert_into(at.dtype, raw, to, conv, name, &at.file)?;
                // SAFETY: `out` holds c x r elements of `n_out` bytes; this task writes columns
                // i0 .. i0 + rows only.
                unsafe {
                    match n_out {
                        2 => scatter_block::<2>(conv, rows, c, r, i0, dst.ptr()),
                        _ => scatter_block::<4>(conv, rows, c, r, i0, dst.ptr()),
                    }
                }
                Ok(())
            },
        )?;
        Ok(RawTensor { shape: vec![c, r], dtype: to, bytes: out })
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
    fn skip(&mut self, name: &str) {
        self.used.insert(name.to_string());
    }
    fn finish(&mut self) -> Result<()> {
        let mut extra: Vec<String> = self.index.keys().filter(|k| !self.used.contains(*k)).cloned().collect();
        if extra.is_empty() {
            return Ok(());
        }
        extra.sort();
        Err(VlmError::ExtraTensors {
            file: self.label.clone(),
            count: extra.len(),
            names: extra.into_iter().take(20).collect(),
        })
    }
}

/// Seeded random parameters, for a model without a checkpoint: N(0, std) matrices, norm
/// scales 1 and zero biases, like `init_weights` in transformers.
pub struct RandomWeights {
    rng: ChaCha8Rng,
    pub std: f32,
    /// Precision of the base weights built from these values.
    pub dtype: DType,
    /// Uniform values with the same standard deviation from a counter-based hash, filled on all
    /// cores: for benchmarks at the real model sizes, where the Box-Muller stream takes minutes.
    fast: bool,
    tensors: u64,
}

impl RandomWeights {
    pub fn new(seed: u64) -> Self {
        RandomWeights { rng: ChaCha8Rng::seed_from_u64(seed), std: 0.02, dtype: DType::F32, fast: false, tensors: 0 }
    }

    /// Fast uniform random weights (see the `fast` field); not the same values as [`Self::new`].
    pub fn fast(seed: u64) -> Self {
        RandomWeights { fast: true, tensors: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), ..Self::new(seed) }
    }

    fn fast_fill(&mut self, n: usize) -> Vec<f32> {
        self.tensors = self.tensors.wrapping_add(1);
        let key = self.tensors;
        let bound = self.std * 3f32.sqrt();
        let mut out = vec![0f32; n];
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let chunk = n.div_ceil(threads).max(1 << 16);
        std::thread::scope(|s| {
            for (c, part) in out.chunks_mut(chunk).enumerate() {
                s.spawn(move || {
                    for (i, x) in part.iter_mut().enumerate() {
                        // splitmix64 of (tensor, index): 24 random bits to a uniform in [-1, 1).
                        let mut z = key ^ ((c * chunk + i) as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                        z ^= z >> 31;
                        *x = ((z >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * bound;
                    }
                });
            }
        });
        out
    }
    fn normal(&mut self) -> f32 {
        // Box-Muller: two uniforms to one standard normal.
        let u1: f64 = self.rng.random::<f64>().max(1e-12);
        let u2: f64 = self.rng.random::<f64>();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

impl WeightSource for RandomWeights {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let n: usize = shape.iter().product();
        let is_norm = name.contains("norm") || name.contains("ln_q");
        let data = if name.ends_with(".bias") {
            vec![0.0; n]
        } else if is_norm {
            vec![1.0; n]
        } else if self.fast {
            self.fast_fill(n)
        } else {
            (0..n).map(|_| self.normal() * self.std).collect()
        };
        Ok(HostTensor { shape: shape.to_vec(), data })
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn contains(&self, _name: &str) -> bool {
        false
    }
    fn skip(&mut self, _name: &str) {}
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Output dtype of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    Bf16,
    F16,
}

/// Collects named tensors (HF layout) and writes them as one safetensors file.
#[derive(Default)]
pub struct TensorSink {
    pub tensors: BTreeMap<String, HostTensor>,
}

impl TensorSink {
    pub fn put(&mut self, name: impl Into<String>, t: HostTensor) {
        self.tensors.insert(name.into(), t);
    }

    pub fn save(&self, path: &Path, dtype: SaveDtype, metadata: Option<HashMap<String, String>>) -> Result<()> {
        let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                let bytes: Vec<u8> = match dtype {
                    SaveDtype::F32 => t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    SaveDtype::Bf16 => t.data.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect(),
                    SaveDtype::F16 => t.data.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect(),
                };
                (k.clone(), t.shape.clone(), bytes)
            })
            .collect();
        let st_dtype = match dtype {
            SaveDtype::F32 => Dtype::F32,
            SaveDtype::Bf16 => Dtype::BF16,
            SaveDtype::F16 => Dtype::F16,
        };
        let mut views = Vec::new();
        for (k, shape, bytes) in &bufs {
            let v = TensorView::new(st_dtype, shape.clone(), bytes)
                .map_err(|e| VlmError::Weights { file: path.display().to_string(), msg: format!("`{k}`: {e}") })?;
            views.push((k.clone(), v));
        }
        // Written beside the target and renamed over it: a model loaded from `path` holds views
        // of the old file's mapping, which stay valid (truncating the file in place would make
        // them fault), and a failed write leaves the old file as it was.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp = PathBuf::from(tmp);
        safetensors::serialize_to_file(views, metadata, &tmp)
            .map_err(|e| VlmError::Weights { file: tmp.display().to_string(), msg: format!("write failed: {e}") })?;
        std::fs::rename(&tmp, path).map_err(|e| VlmError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_matches_the_definition_at_odd_shapes() {
        // Shapes around the 32-wide blocks, one empty side, one row and one column.
        for &(r, c) in &[(1, 1), (1, 70), (70, 1), (33, 65), (64, 32), (100, 37), (0, 5)] {
            let v: Vec<f32> = (0..r * c).map(|i| i as f32).collect();
            let raw = RawTensor {
                shape: vec![r, c],
                dtype: DType::F32,
                bytes: Bytes::from_bytes_vec(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            };
            let t = raw.transposed();
            assert_eq!(t.shape, vec![c, r]);
            let got: Vec<f32> = t.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(got[j * r + i], v[i * c + j], "{r}x{c} at ({i}, {j})");
                }
            }
            // 2-byte elements take the same loop with another element size.
            let h: Vec<u8> = v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect();
            let t = RawTensor { shape: vec![r, c], dtype: DType::BF16, bytes: Bytes::from_bytes_vec(h.clone()) }
                .transposed();
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(t.bytes[2 * (j * r + i)..][..2], h[2 * (i * c + j)..][..2]);
                }
            }
        }
    }

    /// A one-tensor safetensors file of an `r x c` matrix with values `v(i)`, stored as `dtype`.
    fn one_matrix(dir: &Path, dtype: SaveDtype, r: usize, c: usize, v: impl Fn(usize) -> f32) -> PathBuf {
        let mut sink = TensorSink::default();
        sink.put("m", HostTensor { shape: vec![r, c], data: (0..r * c).map(v).collect() });
        let path = dir.join(format!("{dtype:?}.safetensors"));
        sink.save(&path, dtype, None).unwrap();
        path
    }

    #[test]
    fn stored_precision_is_a_file_view_and_transposing_reads_match_the_definition() {
        let dir = std::env::temp_dir().join(format!("vldac-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Several blocks of a transposing read and chunks of a converting one, odd widths.
        let (r, c) = (TRANSPOSE_ROWS * 8 + 5, 301);
        assert!(r * c > CONVERT_CHUNK);
        let v = |i: usize| (i as f32 * 0.731).sin() * 3.0;
        let bits = |t: &RawTensor| -> Vec<u32> {
            match t.dtype.size() {
                4 => t.bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                _ => t.bytes.chunks_exact(2).map(|b| u32::from(u16::from_le_bytes([b[0], b[1]]))).collect(),
            }
        };
        let encode = |x: f32, to: DType| match to {
            DType::F32 => x.to_bits(),
            DType::BF16 => u32::from(bf16::from_f32(x).to_bits()),
            _ => u32::from(f16::from_f32(x).to_bits()),
        };
        for (stored, round) in [(SaveDtype::F32, 0), (SaveDtype::Bf16, 1), (SaveDtype::F16, 2)] {
            let path = one_matrix(&dir, stored, r, c, v);
            // The values as stored, in f32 (exact for every target below).
            let at = |i: usize| match round {
                0 => v(i),
                1 => bf16::from_f32(v(i)).to_f32(),
                _ => f16::from_f32(v(i)).to_f32(),
            };
            for to in [DType::F32, DType::BF16, DType::F16] {
                let open = || SafetensorsWeights::open_files(std::slice::from_ref(&path)).unwrap().with_dtype(to);
                let plain = open().take_raw("m", &[r, c]).unwrap();
                let want: Vec<u32> = (0..r * c).map(|i| encode(at(i), to)).collect();
                assert_eq!(bits(&plain), want, "{stored:?} as {to:?}");
                let same = matches!(
                    (stored, to),
                    (SaveDtype::F32, DType::F32) | (SaveDtype::Bf16, DType::BF16) | (SaveDtype::F16, DType::F16)
                );
                let property = if same { AllocationProperty::File } else { AllocationProperty::Native };
                assert_eq!(plain.bytes.property(), property, "{stored:?} as {to:?}");
                let t = open().take_raw_transposed("m", &[r, c]).unwrap();
                assert_eq!(t.shape, vec![c, r]);
                let want: Vec<u32> = (0..c * r).map(|idx| encode(at((idx % r) * c + idx / r), to)).collect();
                assert_eq!(bits(&t), want, "{stored:?} as {to:?}, transposed");
                // A wrong shape names the tensor before anything is read.
                let err = open().take_raw_transposed("m", &[c, r]).unwrap_err().to_string();
                assert!(err.contains('m') && err.contains(&format!("{r}")), "{err}");
            }
            // Writing over the file a model is viewing leaves the views intact (rename, no truncation).
            let mut w = SafetensorsWeights::open_files(std::slice::from_ref(&path)).unwrap().with_dtype(match round {
                0 => DType::F32,
                1 => DType::BF16,
                _ => DType::F16,
            });
            let view = w.take_raw("m", &[r, c]).unwrap();
            let before = bits(&view);
            one_matrix(&dir, stored, r, c, |i| v(i) + 1.0);
            assert_eq!(bits(&view), before, "{stored:?}: the view changed when the file was rewritten");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn conversions_agree_with_half() {
        // Values with every exponent class (zero, subnormal, inf, nan).
        let n = 20_000;
        let specials = [0.0f32, -0.0, 1e-40, -3.5e-39, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 65504.0, 1e20];
        let v: Vec<f32> = (0..n)
            .map(|i| if i % 97 < specials.len() { specials[i % 97] } else { (i as f32 * 0.37).sin() * 1e3 })
            .collect();
        let bits = |b: &[u8], size: usize| -> Vec<u32> {
            b.chunks_exact(size)
                .map(|c| {
                    if size == 4 {
                        u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                    } else {
                        u16::from_le_bytes([c[0], c[1]]) as u32
                    }
                })
                .collect()
        };
        let as_bf16: Vec<u8> = v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect();
        let as_f16: Vec<u8> = v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect();
        let as_f32: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let convert_bytes = |from: Dtype, src: Vec<u8>, to: DType, name: &str, file: &str| -> Result<Vec<u8>> {
            let mut out = vec![0u8; src.len() / (from.bitsize() / 8) * to.size()];
            convert_into(from, &src, to, &mut out, name, file)?;
            Ok(out)
        };
        // bf16 -> f32 (the shift) and f16 -> f32: exact widening, as half does.
        let wide = convert_bytes(Dtype::BF16, as_bf16.clone(), DType::F32, "t", "-").unwrap();
        let want: Vec<u32> = v.iter().map(|x| bf16::from_f32(*x).to_f32().to_bits()).collect();
        assert_eq!(bits(&wide, 4), want);
        let wide = convert_bytes(Dtype::F16, as_f16.clone(), DType::F32, "t", "-").unwrap();
        let want: Vec<u32> = v.iter().map(|x| f16::from_f32(*x).to_f32().to_bits()).collect();
        assert_eq!(bits(&wide, 4), want);
        // f32 -> bf16 rounds to nearest even, as half (and torch) do.
        let narrow = convert_bytes(Dtype::F32, as_f32, DType::BF16, "t", "-").unwrap();
        assert_eq!(bits(&narrow, 2), bits(&as_bf16, 2));
        // Same dtype: the bytes as they are.
        assert_eq!(convert_bytes(Dtype::F16, as_f16.clone(), DType::F16, "t", "-").unwrap()[..], as_f16[..]);
        // An unsupported stored dtype names the tensor.
        let err = convert_bytes(Dtype::I32, vec![0; 8], DType::F32, "model.x.weight", "a.safetensors").unwrap_err();
        assert!(err.to_string().contains("model.x.weight"), "{err}");
    }
}
