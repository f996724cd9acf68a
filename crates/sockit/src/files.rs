//! Reading the small files sockit is given (services and protocols databases, PEM
//! certificates and keys) with a size cap, so that a path like `/dev/zero` is refused
//! instead of read until memory runs out.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Reads at most `cap` bytes of `path`, a `role` (`"services file"`, `"PEM file"`). Errors
/// name `op`, or the path itself when `op` is `None`.
///
/// # Errors
/// [`ErrorKind::Os`](crate::ErrorKind::Os) with the errno when it cannot be opened or
/// read; [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when it is larger
/// than `cap` (`larger than 4 MiB, not a PEM file`).
pub fn read_capped(path: &Path, cap: u64, op: Option<&str>, role: &str) -> Result<Vec<u8>> {
    let shown = path.display().to_string();
    // With an operation the path is where it was tried (`denyfile /dev/zero: …`, op
    // `denyfile`); without one the path is the operation.
    let error = |e: Error| match op {
        Some(_) => e.at(shown.clone()),
        None => e,
    };
    let op_text = op.map_or_else(|| shown.clone(), str::to_string);
    let file = std::fs::File::open(path).map_err(|e| error(Error::from_io(op_text.clone(), e)))?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(Error::from_io(op_text.clone(), e)))?;
    if bytes.len() as u64 > cap {
        let size = format!("{} MiB", cap >> 20);
        let a = if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        let message = format!("larger than {size}, not {a} {role}");
        return Err(error(Error::invalid_input(op_text, message)));
    }
    Ok(bytes)
}
