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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

unsafe extern "C" {
    // glibc's reentrant host lookups and address text conversions (not in the libc crate
    // for linux-gnu).
    fn gethostbyname_r(
        name: *const libc::c_char,
        ret: *mut libc::hostent,
        buf: *mut libc::c_char,
        buflen: libc::size_t,
        result: *mut *mut libc::hostent,
        h_errnop: *mut libc::c_int,
    ) -> libc::c_int;
    fn gethostbyaddr_r(
        addr: *const libc::c_void,
        len: libc::socklen_t,
        af: libc::c_int,
        ret: *mut libc::hostent,
        buf: *mut libc::c_char,
        buflen: libc::size_t,
        result: *mut *mut libc::hostent,
        h_errnop: *mut libc::c_int,
    ) -> libc::c_int;
    fn inet_aton(cp: *const libc::c_char, inp: *mut libc::in_addr) -> libc::c_int;
    fn inet_pton(af: libc::c_int, src: *const libc::c_char, dst: *mut libc::c_void) -> libc::c_int;
    fn inet_ntop(
        af: libc::c_int,
        src: *const libc::c_void,
        dst: *mut libc::c_char,
        size: libc::socklen_t,
    ) -> *const libc::c_char;
}

/// A `struct hostent` copied out of the C library's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHostent {
    /// `h_name`.
    pub name: String,
    /// `h_aliases`.
    pub aliases: Vec<String>,
    /// `h_addrtype` (AF_INET or AF_INET6).
    pub addrtype: i32,
    /// `h_addr_list`.
    pub addrs: Vec<IpAddr>,
}

/// Copies a hostent the C library filled in.
///
/// # Safety
/// `h` must point to a hostent whose pointers are valid (they point into the caller's buffer).
unsafe fn copy_hostent(h: *const libc::hostent) -> RawHostent {
    // SAFETY: the caller guarantees h and everything it points to are valid; the lists are
    // NULL-terminated arrays of NUL-terminated strings / h_length-byte addresses.
    unsafe {
        let h = &*h;
        let cstr = |p: *const libc::c_char| CStr::from_ptr(p).to_string_lossy().into_owned();
        let name = if h.h_name.is_null() {
            String::new()
        } else {
            cstr(h.h_name)
        };
        let mut aliases = Vec::new();
        if !h.h_aliases.is_null() {
            let mut p = h.h_aliases;
            while !(*p).is_null() {
                aliases.push(cstr(*p));
                p = p.add(1);
            }
        }
        let mut addrs = Vec::new();
        if !h.h_addr_list.is_null() {
            let mut p = h.h_addr_list;
            while !(*p).is_null() {
                let a = *p as *const u8;
                match (h.h_addrtype, h.h_length) {
                    (libc::AF_INET, 4) => {
                        let mut b = [0u8; 4];
                        std::ptr::copy_nonoverlapping(a, b.as_mut_ptr(), 4);
                        addrs.push(IpAddr::V4(Ipv4Addr::from(b)));
                    }
                    (libc::AF_INET6, 16) => {
                        let mut b = [0u8; 16];
                        std::ptr::copy_nonoverlapping(a, b.as_mut_ptr(), 16);
                        addrs.push(IpAddr::V6(Ipv6Addr::from(b)));
                    }
                    _ => {}
                }
                p = p.add(1);
            }
        }
        RawHostent {
            name,
            aliases,
            addrtype: h.h_addrtype,
            addrs,
        }
    }
}

/// Runs a `*_r` host call with a growing buffer (16 KiB, doubled on ERANGE up to 1 MiB).
/// Returns the copied hostent, or the h_errno value.
fn with_hostent_buffer(
    mut call: impl FnMut(
        *mut libc::hostent,
        *mut libc::c_char,
        libc::size_t,
        *mut *mut libc::hostent,
        *mut libc::c_int,
    ) -> libc::c_int,
) -> Result<RawHostent, i32> {
    let mut size = 16 * 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: hostent is a plain C struct; all-zero is a valid value to be filled in.
        let mut ent: libc::hostent = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::hostent = std::ptr::null_mut();
        let mut h_errno: libc::c_int = 0;
        let rc = call(
            &mut ent,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
            &mut h_errno,
        );
        if rc == libc::ERANGE && size < 1024 * 1024 {
            size *= 2;
            continue;
        }
        if result.is_null() {
            // NETDB_INTERNAL (-1) with rc set: report "Resolver internal error".
            return Err(if h_errno == 0 { -1 } else { h_errno });
        }
        // SAFETY: on success result points to ent, whose pointers point into buf (alive).
        return Ok(unsafe { copy_hostent(result) });
    }
}

/// `gethostbyname_r(3)`: the hostent for a name, or h_errno.
pub fn gethostbyname(name: &CStr) -> Result<RawHostent, i32> {
    with_hostent_buffer(|ent, buf, len, result, herr| {
        // SAFETY: name is NUL-terminated; ent, buf (len bytes), result and herr are valid
        // for the duration of the call.
        unsafe { gethostbyname_r(name.as_ptr(), ent, buf, len, result, herr) }
    })
}

/// `gethostbyaddr_r(3)`: the hostent for an address, or h_errno.
pub fn gethostbyaddr(addr: IpAddr) -> Result<RawHostent, i32> {
    let (bytes, af): (Vec<u8>, i32) = match addr {
        IpAddr::V4(a) => (a.octets().to_vec(), libc::AF_INET),
        IpAddr::V6(a) => (a.octets().to_vec(), libc::AF_INET6),
    };
    with_hostent_buffer(|ent, buf, len, result, herr| {
        // SAFETY: bytes holds the address of the length passed; the other pointers are
        // valid for the duration of the call.
        unsafe {
            gethostbyaddr_r(
                bytes.as_ptr().cast(),
                bytes.len() as libc::socklen_t,
                af,
                ent,
                buf,
                len,
                result,
                herr,
            )
        }
    })
}

/// `getnameinfo(3)` with NI_MAXHOST/NI_MAXSERV buffers: (host, service), or the EAI code.
pub fn getnameinfo(addr: &SocketAddr, flags: i32) -> Result<(String, String), i32> {
    let sa = socket2::SockAddr::from(*addr);
    let mut host = [0 as libc::c_char; 1025];
    let mut serv = [0 as libc::c_char; 32];
    // SAFETY: sa is a valid sockaddr of the length passed; both buffers are writable for
    // the lengths passed.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr().cast(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            serv.as_mut_ptr(),
            serv.len() as libc::socklen_t,
            flags,
        )
    };
    if rc != 0 {
        return Err(rc);
    }
    // SAFETY: on success both buffers hold NUL-terminated strings.
    let (h, s) = unsafe { (CStr::from_ptr(host.as_ptr()), CStr::from_ptr(serv.as_ptr())) };
    Ok((
        h.to_string_lossy().into_owned(),
        s.to_string_lossy().into_owned(),
    ))
}

/// `inet_aton(3)`: the 4 bytes (network order) of IPv4 text in any of its classic forms.
pub fn inet_aton_raw(text: &CStr) -> Option<[u8; 4]> {
    let mut a = libc::in_addr { s_addr: 0 };
    // SAFETY: text is NUL-terminated and a is a valid out parameter.
    let ok = unsafe { inet_aton(text.as_ptr(), &mut a) };
    (ok != 0).then(|| a.s_addr.to_ne_bytes())
}

/// `inet_pton(3)`: Ok(Some(bytes)) on success, Ok(None) for bad text, Err(errno) for a bad
/// family.
pub fn inet_pton_raw(af: i32, text: &CStr) -> Result<Option<Vec<u8>>, i32> {
    let mut buf = [0u8; 16];
    // SAFETY: text is NUL-terminated; buf has room for the largest address (16 bytes).
    let rc = unsafe { inet_pton(af, text.as_ptr(), buf.as_mut_ptr().cast()) };
    match rc {
        1 => Ok(Some(
            buf[..if af == libc::AF_INET { 4 } else { 16 }].to_vec(),
        )),
        0 => Ok(None),
        _ => Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EAFNOSUPPORT)),
    }
}

/// `inet_ntop(3)` for AF_INET (4 bytes) or AF_INET6 (16 bytes); the caller checks lengths.
pub fn inet_ntop_raw(af: i32, packed: &[u8]) -> Result<String, i32> {
    let need = if af == libc::AF_INET { 4 } else { 16 };
    if packed.len() != need {
        return Err(libc::EINVAL);
    }
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: packed holds `need` bytes for the family; buf is writable for its length.
    let p = unsafe {
        inet_ntop(
            af,
            packed.as_ptr().cast(),
            buf.as_mut_ptr(),
            buf.len() as libc::socklen_t,
        )
    };
    if p.is_null() {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    // SAFETY: on success buf holds a NUL-terminated string.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}
