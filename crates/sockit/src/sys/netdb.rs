//! The C library's network database calls: host name, host and address lookups
//! (`gethostbyname_r(3)`, `gethostbyaddr_r(3)`, `getnameinfo(3)`), `inet_aton(3)`.
//!
//! Each function wraps one call and returns owned values; h_errno and EAI codes are
//! returned as plain integers for the library to turn into errors.

use std::ffi::CStr;

/// `gethostname(2)`: this machine's name, or the errno.
pub fn gethostname() -> Result<String, i32> {
    let mut buf = [0 as libc::c_char; 1024];
    // SAFETY: buf is writable for the length passed (one byte kept for the NUL below).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr(), buf.len() - 1) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    // SAFETY: the last byte is never written, so the buffer is NUL-terminated.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}
