//! Zero-copy relays (splice(2)) against the copying path (`--no-splice`): the same bytes,
//! half-closes and resets either way, and a clean fallback where the kernel or the
//! descriptor refuses splice (a UDP target, a terminal, an `O_APPEND` file).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{
    Server, assert_bytes_eq, pattern, serve_one_client, server_stderr, sockit,
    sockit_server_stderr, temp_dir, wait_listening, wait_output,
};

const T: Duration = Duration::from_secs(60);
const BIG: usize = 64 << 20;

fn timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(T)).unwrap();
    s.set_write_timeout(Some(T)).unwrap();
}

/// A one-client target that sends `down` (then half-closes) while it reads what the
/// client sends until its EOF; `join` gives what it read.
fn duplex_target(down: Vec<u8>) -> (u16, JoinHandle<Vec<u8>>) {
    serve_one_client(move |s| {
        timeouts(&s);
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&down).expect("target writes");
            w.shutdown(Shutdown::Write).expect("target half-closes");
        });
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).expect("target reads");
        writer.join().unwrap();
        got
    })
}

/// Sends `up` from a thread and half-closes while reading everything back until EOF.
fn duplex_client(addr: SocketAddr, up: Vec<u8>) -> Vec<u8> {
    let s = TcpStream::connect_timeout(&addr, T).expect("connect");
    timeouts(&s);
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&up).expect("client writes");
        w.shutdown(Shutdown::Write).expect("client half-closes");
    });
    let mut got = Vec::new();
    (&s).read_to_end(&mut got).expect("client reads");
    writer.join().unwrap();
    got
}

/// `sockit forward -v [--no-splice] 127.0.0.1:0 TARGET`, stderr piped.
fn forward(copy: bool, target: &str) -> Server {
    let mut args = vec!["forward", "-v", "127.0.0.1:0", target];
    if copy {
        args.insert(2, "--no-splice");
    }
    sockit_server_stderr(&args)
}

/// Stops a server and returns its `#1 closed` line.
fn closed_line(server: &mut Server) -> String {
    server.terminate(T);
    let said = server_stderr(server);
    said.lines()
        .find(|l| l.contains("#1 closed"))
        .unwrap_or_else(|| panic!("no closed line: {said}"))
        .to_string()
}

#[test]
fn forward_64_mib_both_ways_with_half_close_same_bytes_spliced_or_copied() {
    let (up, down) = (pattern(BIG, 1), pattern(BIG, 2));
    for copy in [false, true] {
        let (port, target) = duplex_target(down.clone());
        let mut fwd = forward(copy, &format!("127.0.0.1:{port}"));
        let got = duplex_client(fwd.addr(), up.clone());
        assert_bytes_eq(&got, &down, "target to client");
        assert_bytes_eq(&target.join().unwrap(), &up, "client to target");
        let line = closed_line(&mut fwd);
        let want = if copy { ", copied" } else { ", zero-copy" };
        assert!(line.ends_with(want), "--no-splice {copy}: {line}");
        assert!(
            line.contains(&format!("{BIG} bytes sent, {BIG} bytes received")),
            "{line}"
        );
    }
}

#[test]
fn forward_unix_target_64_mib_spliced_or_copied() {
    let dir = temp_dir("splice-unix");
    let path = dir.join("t.sock");
    let down = pattern(BIG, 3);
    for copy in [false, true] {
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let d = down.clone();
        let target = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            s.set_write_timeout(Some(T)).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            (&s).write_all(&d).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            (&s).read_to_end(&mut rest).unwrap();
            rest
        });
        let mut fwd = forward(copy, &format!("unix:{}", path.display()));
        let got = duplex_client(fwd.addr(), b"bye".to_vec());
        assert_bytes_eq(&got, &down, "unix target to client");
        assert_eq!(target.join().unwrap(), b"bye");
        let want = if copy { ", copied" } else { ", zero-copy" };
        assert!(closed_line(&mut fwd).ends_with(want));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn forward_target_reset_mid_stream_gives_a_byte_identical_prefix_then_the_reset() {
    let down = pattern(16 << 20, 4);
    for copy in [false, true] {
        let d = down.clone();
        let (port, target) = serve_one_client(move |s| {
            timeouts(&s);
            (&s).write_all(&d).unwrap();
            // SO_LINGER 0 and close: a RST in the middle of the stream
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        });
        let mut fwd = forward(copy, &format!("127.0.0.1:{port}"));
        let c = TcpStream::connect_timeout(&fwd.addr(), T).unwrap();
        timeouts(&c);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let err = loop {
            match (&c).read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break Some(e.kind()),
            }
        };
        target.join().unwrap();
        assert_eq!(
            err,
            Some(std::io::ErrorKind::ConnectionReset),
            "--no-splice {copy}: {} bytes, then a clean EOF",
            got.len()
        );
        assert!(got.len() <= down.len());
        assert_bytes_eq(&got, &down[..got.len()], "prefix before the reset");
        let line = closed_line(&mut fwd);
        assert!(line.contains("reset by the target"), "{line}");
    }
}

#[test]
fn forward_to_a_udp_target_copies_and_says_so() {
    // Splice refused: a stream client to a UDP session is a datagram relay.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(T)).unwrap();
    let uaddr = u.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let (n, from) = u.recv_from(&mut buf).unwrap();
        u.send_to(&buf[..n], from).unwrap();
    });
    let mut fwd = forward(false, &format!("udp:{uaddr}"));
    let c = TcpStream::connect_timeout(&fwd.addr(), T).unwrap();
    timeouts(&c);
    (&c).write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    (&c).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    echo.join().unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = (&c).read_to_end(&mut rest);
    let line = closed_line(&mut fwd);
    assert!(line.ends_with(", copied"), "{line}");
}

/// A one-client target that echoes what it reads until EOF, then closes.
fn echo_target() -> (u16, JoinHandle<usize>) {
    serve_one_client(|s| {
        timeouts(&s);
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        loop {
            match (&s).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    (&s).write_all(&buf[..k]).unwrap();
                    n += k;
                }
            }
        }
        n
    })
}

/// The `closed` line of a connect or listen run's stderr.
fn closed_of(stderr: &[u8]) -> String {
    let said = String::from_utf8_lossy(stderr);
    said.lines()
        .find(|l| l.contains("closed"))
        .unwrap_or_else(|| panic!("no closed line: {said}"))
        .to_string()
}

#[test]
fn connect_64_mib_file_to_pipe_and_pipe_to_file_same_bytes_spliced_or_copied() {
    let dir = temp_dir("splice-connect");
    let data = pattern(BIG, 5);
    let input = dir.join("in");
    std::fs::write(&input, &data).unwrap();
    for copy in [false, true] {
        let flag = if copy { "--no-splice" } else { "-v" };
        let want = if copy { ", copied" } else { ", zero-copy" };
        // stdin a file, stdout a pipe
        let (port, echo) = echo_target();
        let mut c = sockit(&["connect", "-v", flag, "127.0.0.1", &port.to_string()]);
        c.stdin(std::fs::File::open(&input).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = wait_output(c.spawn().unwrap(), T);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_bytes_eq(&out.stdout, &data, "file to socket to pipe");
        assert_eq!(echo.join().unwrap(), BIG);
        let line = closed_of(&out.stderr);
        assert!(line.ends_with(want), "{line}");
        // stdin a pipe, stdout a file
        let (port, echo) = echo_target();
        let output = dir.join(format!("out-{copy}"));
        let mut c = sockit(&["connect", "-v", flag, "127.0.0.1", &port.to_string()]);
        c.stdin(Stdio::piped())
            .stdout(std::fs::File::create(&output).unwrap())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut sin = child.stdin.take().unwrap();
        let d = data.clone();
        let feeder = std::thread::spawn(move || sin.write_all(&d).unwrap());
        let out = wait_output(child, T);
        feeder.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_bytes_eq(
            &std::fs::read(&output).unwrap(),
            &data,
            "pipe to socket to file",
        );
        assert_eq!(echo.join().unwrap(), BIG);
        assert!(closed_of(&out.stderr).ends_with(want));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn connect_to_an_append_only_file_falls_back_to_copying_every_byte() {
    // splice(2) into a file opened with O_APPEND is EINVAL: the bytes already in the
    // pipe go out through user space, and so does the rest.
    let dir = temp_dir("splice-append");
    let data = pattern(8 << 20, 6);
    let input = dir.join("in");
    std::fs::write(&input, &data).unwrap();
    let output = dir.join("out");
    std::fs::write(&output, b"kept\n").unwrap();
    let (port, echo) = echo_target();
    let mut c = sockit(&["connect", "-v", "--json", "127.0.0.1", &port.to_string()]);
    let append = std::fs::OpenOptions::new()
        .append(true)
        .open(&output)
        .unwrap();
    c.stdin(std::fs::File::open(&input).unwrap())
        .stdout(append)
        .stderr(Stdio::piped());
    let out = wait_output(c.spawn().unwrap(), T);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = b"kept\n".to_vec();
    want.extend_from_slice(&data);
    assert_bytes_eq(&std::fs::read(&output).unwrap(), &want, "appended output");
    assert_eq!(echo.join().unwrap(), data.len());
    let closed: serde_json::Value = serde_json::from_str(&closed_of(&out.stderr)).unwrap();
    assert_eq!(closed["zero_copy"], false, "{closed}");
    // without --json: the receive side fell back, the send side spliced; the line says so
    let (port, echo) = echo_target();
    let mut c = sockit(&["connect", "-v", "127.0.0.1", &port.to_string()]);
    let append = std::fs::OpenOptions::new()
        .append(true)
        .open(&output)
        .unwrap();
    c.stdin(std::fs::File::open(&input).unwrap())
        .stdout(append)
        .stderr(Stdio::piped());
    let out = wait_output(c.spawn().unwrap(), T);
    assert!(out.status.success());
    assert_eq!(echo.join().unwrap(), data.len());
    let line = closed_of(&out.stderr);
    assert!(
        line.ends_with(", zero-copy sent, copied received"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_stdin_does_not_make_a_spliced_download_say_copied() {
    // Regression (QA splice.md D1): stdin /dev/null (copied, 0 bytes) made a download that
    // spliced every byte say `copied` and `"zero_copy":false`.
    for json in [false, true] {
        let (port, target) = crate::common::serve_one_client(|mut s| {
            s.set_write_timeout(Some(T)).unwrap();
            s.write_all(&vec![b'z'; 4 << 20]).unwrap();
        });
        let mut args = vec!["connect", "-v"];
        if json {
            args.push("--json");
        }
        let port = port.to_string();
        args.extend(["127.0.0.1", &port]);
        let mut c = sockit(&args);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = wait_output(c.spawn().unwrap(), T);
        target.join().unwrap();
        assert_eq!(out.stdout.len(), 4 << 20);
        let line = closed_of(&out.stderr);
        if json {
            let closed: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(closed["zero_copy"], true, "{closed}");
        } else {
            assert!(line.ends_with(", zero-copy"), "{line}");
        }
    }
}

/// A pseudo-terminal in raw mode (bytes pass unchanged): (master, slave).
fn raw_pty() -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty fills two descriptors; the name, termios and winsize are optional.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are open descriptors nobody else owns.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    // SAFETY: termios is plain data; tcgetattr fills it, cfmakeraw edits it in place.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(s.as_raw_fd(), &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(s.as_raw_fd(), libc::TCSANOW, &t), 0);
    }
    (m, s)
}

#[test]
fn connect_with_stdout_on_a_terminal_copies_and_says_so() {
    // A terminal is not spliced (its writes may block): that direction copies.
    let data = pattern(256 << 10, 7);
    let d = data.clone();
    let (port, target) = serve_one_client(move |s| {
        timeouts(&s);
        (&s).write_all(&d).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = (&s).read_to_end(&mut rest);
    });
    let (master, slave) = raw_pty();
    let mut c = sockit(&["connect", "-v", "127.0.0.1", &port.to_string()]);
    c.stdin(Stdio::null())
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let mut m = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + T;
        // EIO once the last holder of the terminal's other side has closed it
        while got.len() < 256 << 10 && Instant::now() < deadline {
            match m.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    let out = wait_output(child, T);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join().unwrap();
    assert_bytes_eq(&reader.join().unwrap(), &data, "socket to terminal");
    let line = closed_of(&out.stderr);
    assert!(line.ends_with(", copied"), "{line}");
}

#[test]
fn listen_64_mib_both_ways_same_bytes_spliced_or_copied() {
    let dir = temp_dir("splice-listen");
    let (to_client, from_client) = (pattern(BIG, 8), pattern(BIG, 9));
    let input = dir.join("in");
    std::fs::write(&input, &to_client).unwrap();
    for copy in [false, true] {
        let port = crate::common::free_port();
        let flag = if copy { "--no-splice" } else { "-v" };
        let mut c = sockit(&["listen", "-v", flag, "127.0.0.1", &port.to_string()]);
        c.stdin(std::fs::File::open(&input).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        // stdout is read while the client runs (a full pipe would stall the relay)
        let waiter = std::thread::spawn(move || wait_output(child, T));
        wait_listening(port, false);
        let got = duplex_client(
            SocketAddr::from(([127, 0, 0, 1], port)),
            from_client.clone(),
        );
        let out = waiter.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_bytes_eq(&got, &to_client, "file to client");
        // (the listening line may come first on stdout)
        let data = match out.stdout.strip_prefix(b"listening ") {
            Some(rest) => &rest[rest.iter().position(|&b| b == b'\n').unwrap() + 1..],
            None => &out.stdout[..],
        };
        assert_bytes_eq(data, &from_client, "client to stdout");
        let want = if copy { ", copied" } else { ", zero-copy" };
        let line = closed_of(&out.stderr);
        assert!(line.ends_with(want), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
