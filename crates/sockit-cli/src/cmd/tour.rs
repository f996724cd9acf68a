//! `sockit tour`: every program of the slides, run live on loopback, in-process on the
//! library, one step after another, each explained in a sentence or two.
//!
//! Needs neither python3 nor `../shared`, and sends nothing beyond 127.0.0.1: the lookups
//! use `localhost` (IPv4) and numeric-only getaddrinfo, and the HTTP step talks to a tiny
//! responder the tour starts itself. Exits 0 only when every step behaved as the slides say.

use std::io::Write;
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use sockit::repr::bytes_repr;
use sockit::resolve::{self, AI_NUMERICHOST};
use sockit::socket::SockAddr;
use sockit::{ErrorKind, Family, SockType, Socket};

/// Arguments of `sockit tour`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Language of the explanations: `en` (English) or `ko` (Korean, the slides' language).
    #[arg(long, value_name = "LANG", default_value = "en", value_parser = ["en", "ko"])]
    lang: String,
}

/// A step's result: the lines it printed are already out; Err says what went wrong.
type Step = Result<(), String>;

/// One step of the tour: title and explanation in both languages, and the program.
struct Lesson {
    title: [&'static str; 2],
    explain: [&'static str; 2],
    run: fn(&mut Out) -> Step,
}

/// Where the tour writes: stdout, with each program line indented. The first write error
/// is kept and ends the tour (a full disk is reported, a closed pipe ends quietly).
struct Out {
    stdout: std::io::Stdout,
    /// 0 English, 1 Korean.
    lang: usize,
    error: Option<std::io::Error>,
}

impl Out {
    fn line(&mut self, text: impl AsRef<str>) {
        self.raw(format_args!("   {}", text.as_ref()));
    }

    /// A line in the tour's language: `[english, korean]`.
    fn say(&mut self, text: [&str; 2]) {
        self.line(text[self.lang]);
    }

    fn raw(&mut self, args: std::fmt::Arguments<'_>) {
        if self.error.is_none() {
            if let Err(e) = self
                .stdout
                .write_fmt(args)
                .and_then(|()| self.stdout.write_all(b"\n"))
            {
                self.error = Some(e);
            }
        }
    }

    /// The first write error, as the library's error (`write: [Errno 28] ...`).
    fn check(&mut self) -> anyhow::Result<()> {
        match self.error.take() {
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(e.into()),
            Some(e) => Err(sockit::Error::from_io("write", e).into()),
            None => Ok(()),
        }
    }
}

const LESSONS: &[Lesson] = &[
    Lesson {
        title: ["Creating sockets", "소켓 생성"],
        explain: [
            "socket.socket(family, type, proto) makes an endpoint: the family picks the address \
             kind (IPv4, IPv6, Unix), the type picks a byte stream (TCP) or datagrams (UDP).",
            "socket.socket(family, type, proto)는 통신 끝점을 만듭니다. family는 주소 종류\
             (IPv4, IPv6, Unix)를, type은 바이트 스트림(TCP)인지 데이터그램(UDP)인지를 정합니다.",
        ],
        run: create_sockets,
    },
    Lesson {
        title: ["Host and service lookups", "호스트와 서비스 조회"],
        explain: [
            "gethostname() names this machine, gethostbyname() turns a host name into an IPv4 \
             address (from /etc/hosts here), and getservbyport() names the service of a \
             well-known port.",
            "gethostname()은 이 컴퓨터의 이름을, gethostbyname()은 호스트 이름을 IPv4 주소로\
             (여기서는 /etc/hosts에서) 바꾸고, getservbyport()는 잘 알려진 포트의 서비스 이름을 \
             알려 줍니다.",
        ],
        run: lookups,
    },
    Lesson {
        title: ["TCP echo server and client", "TCP 에코 서버와 클라이언트"],
        explain: [
            "The server binds a port, listens and accepts; the client connects; each message \
             the client sends with sendall() comes back through recv().",
            "서버는 포트에 bind하고 listen한 뒤 accept하고, 클라이언트는 connect합니다. \
             클라이언트가 sendall()로 보낸 메시지가 recv()로 되돌아옵니다.",
        ],
        run: tcp_echo,
    },
    Lesson {
        title: ["UDP echo: datagrams", "UDP 에코: 데이터그램"],
        explain: [
            "UDP has no connection: sendto() sends one datagram to an address and recvfrom() \
             returns one datagram with its sender's address.",
            "UDP에는 연결이 없습니다. sendto()는 데이터그램 하나를 주소로 보내고, recvfrom()은 \
             데이터그램 하나와 보낸 쪽의 주소를 돌려줍니다.",
        ],
        run: udp_echo,
    },
    Lesson {
        title: [
            "Blocking, non-blocking and timeouts",
            "블로킹, 논블로킹, 타임아웃",
        ],
        explain: [
            "A blocking call waits; setblocking(False) makes a call that cannot proceed fail at \
             once with EAGAIN; settimeout(0.5) waits at most half a second and then raises \
             socket.timeout.",
            "블로킹 호출은 기다립니다. setblocking(False)이면 진행할 수 없는 호출이 EAGAIN으로 \
             바로 실패하고, settimeout(0.5)이면 최대 0.5초를 기다린 뒤 socket.timeout을 \
             일으킵니다.",
        ],
        run: timeouts,
    },
    Lesson {
        title: ["Error kinds", "오류 종류"],
        explain: [
            "socket.error (OSError) carries an errno, socket.gaierror an address-lookup code, \
             socket.herror a host-lookup code, socket.timeout an expired deadline. The slides' \
             mistyped name is refused without any DNS query (AI_NUMERICHOST).",
            "socket.error(OSError)는 errno를, socket.gaierror는 주소 조회 코드를, \
             socket.herror는 호스트 조회 코드를, socket.timeout은 시간 초과를 알립니다. \
             슬라이드의 잘못 쓴 이름은 DNS 질의 없이(AI_NUMERICHOST) 거절됩니다.",
        ],
        run: error_kinds,
    },
    Lesson {
        title: [
            "A raw HTTP GET over a plain socket",
            "일반 소켓으로 보내는 HTTP GET",
        ],
        explain: [
            "HTTP is just bytes on a TCP connection: send 'GET / HTTP/1.1' and read what the \
             server answers. The slides' bare request has no Host header, which a strict \
             HTTP/1.1 server answers with 400; adding Host gets the page. (The slides used a \
             public web site; the tour starts a tiny web server on 127.0.0.1 instead.)",
            "HTTP는 TCP 연결 위의 바이트일 뿐입니다. 'GET / HTTP/1.1'을 보내고 서버의 응답을 \
             읽습니다. 슬라이드의 요청에는 Host 헤더가 없어 엄격한 HTTP/1.1 서버는 400으로 \
             답하고, Host를 넣으면 페이지를 받습니다. (슬라이드는 공개 웹 사이트를 썼지만, 여기서는 127.0.0.1에 작은 웹 서버를 \
             띄웁니다.)",
        ],
        run: http_get,
    },
];

/// Runs `sockit tour`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let lang = usize::from(args.lang == "ko");
    let mut out = Out {
        stdout: std::io::stdout(),
        lang,
        error: None,
    };
    let total = LESSONS.len();
    let mut passed = 0;
    for (i, lesson) in LESSONS.iter().enumerate() {
        out.raw(format_args!(
            "\n== {}/{total}. {}",
            i + 1,
            lesson.title[lang]
        ));
        let width = if lang == 1 { 50 } else { 88 }; // Hangul takes two columns
        out.raw(format_args!("{}", wrap(lesson.explain[lang], width, "")));
        match (lesson.run)(&mut out) {
            Ok(()) => {
                passed += 1;
                out.line("ok");
            }
            Err(what) => out.line(format!("FAILED: {what}")),
        }
        if out.error.is_none() {
            if let Err(e) = out.stdout.flush() {
                out.error = Some(e);
            }
        }
        out.check()?;
    }
    let summary = if lang == 1 {
        format!("\n투어: {total}단계 중 {passed}단계 성공")
    } else {
        format!("\ntour: {passed} of {total} steps ok")
    };
    out.raw(format_args!("{summary}"));
    if out.error.is_none() {
        if let Err(e) = out.stdout.flush() {
            out.error = Some(e);
        }
    }
    out.check()?;
    Ok(if passed == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Wraps text at `width` columns (counting characters), each line prefixed.
fn wrap(text: &str, width: usize, prefix: &str) -> String {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(format!("{prefix}{cur}"));
            cur.clear();
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(format!("{prefix}{cur}"));
    }
    lines.join("\n")
}

/// What a call gave, in Python's words: `success`, or the error's text.
fn outcome<T>(r: &sockit::Result<T>) -> String {
    match r {
        Ok(_) => "success".to_string(),
        Err(e) => e.to_string(),
    }
}

fn fail(e: sockit::Error) -> String {
    e.to_string()
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// How long any one call of the tour may take: every step ends by itself.
const STEP_DEADLINE: Duration = Duration::from_secs(5);

/// A new IPv4 socket whose every call is bounded by [`STEP_DEADLINE`].
fn bounded(socktype: SockType) -> Result<Socket, String> {
    let mut s = Socket::new(Family::Inet, socktype, None).map_err(fail)?;
    s.set_timeout(Some(STEP_DEADLINE)).map_err(fail)?;
    Ok(s)
}

/// A bounded TCP listener on 127.0.0.1 (a free port), and its address.
fn tcp_listener() -> Result<(Socket, SockAddr), String> {
    let server = bounded(SockType::Stream)?;
    server.set_reuse_address(true).map_err(fail)?;
    server.bind(loopback()).map_err(fail)?;
    server.listen(1).map_err(fail)?;
    let addr = server.local_addr().map_err(fail)?;
    Ok((server, addr))
}

fn create_sockets(out: &mut Out) -> Step {
    for (family, socktype) in [
        (Family::Inet, SockType::Stream),
        (Family::Inet, SockType::Dgram),
        (Family::Inet6, SockType::Stream),
        (Family::Unix, SockType::Stream),
    ] {
        let s = Socket::new(family, socktype, None).map_err(fail)?;
        out.line(format!(
            "socket({family}, {socktype}) -> fd {}, family {}, type {}, proto {}",
            s.fileno(),
            s.family(),
            s.socket_type(),
            s.protocol()
        ));
        if s.family() != family || s.socket_type() != socktype || s.fileno() < 0 {
            return Err("the socket does not report what it was created with".into());
        }
    }
    Ok(())
}

fn lookups(out: &mut Out) -> Step {
    let name = resolve::gethostname().map_err(fail)?;
    out.line(format!("gethostname() -> {name:?}"));
    let ip = resolve::gethostbyname("localhost").map_err(fail)?;
    out.line(format!(
        "gethostbyname('localhost') -> {:?}",
        ip.to_string()
    ));
    if ip != Ipv4Addr::LOCALHOST {
        return Err(format!("localhost is {ip}, not 127.0.0.1"));
    }
    for (port, want) in [(80, "http"), (53, "domain"), (25, "smtp")] {
        let service = resolve::getservbyport(port, Some("tcp")).map_err(fail)?;
        out.line(format!("getservbyport({port}, 'tcp') -> {service:?}"));
        if service != want {
            return Err(format!("port {port} is {service}, not {want}"));
        }
    }
    Ok(())
}

/// The slides' echo server: accept one client and echo until it closes.
fn echo_server_once(listener: Socket) -> thread::JoinHandle<sockit::Result<()>> {
    thread::spawn(move || {
        let (conn, _) = listener.accept()?;
        loop {
            let data = conn.recv(1024)?;
            if data.is_empty() {
                return Ok(());
            }
            conn.send_all(&data)?;
        }
    })
}

fn tcp_echo(out: &mut Out) -> Step {
    let (server, addr) = tcp_listener()?;
    out.say([
        &format!("server: bind + listen on {addr}"),
        &format!("서버: {addr}에 bind + listen"),
    ]);
    let handle = echo_server_once(server);
    let mut client = bounded(SockType::Stream)?;
    client.connect(&addr).map_err(fail)?;
    let local = client.local_addr().map_err(fail)?;
    out.say([
        &format!("client: connect to {addr} from {local}"),
        &format!(
            "클라이언트: {local}에서 {addr}{} connect",
            ro(&addr.to_string())
        ),
    ]);
    for msg in [&b"Hello, world"[..], b"echo me back"] {
        client.send_all(msg).map_err(fail)?;
        let mut got = Vec::new();
        while got.len() < msg.len() {
            let chunk = client.recv(1024).map_err(fail)?;
            if chunk.is_empty() {
                break;
            }
            got.extend_from_slice(&chunk);
        }
        out.line(format!("Received {}", bytes_repr(&got)));
        if got != msg {
            return Err("the echo differs from what was sent".into());
        }
    }
    client.shutdown(Shutdown::Write).map_err(fail)?;
    client.close();
    handle
        .join()
        .map_err(|_| "the server thread panicked".to_string())?
        .map_err(fail)?;
    out.say([
        "client closed; the server saw EOF and stopped",
        "클라이언트가 닫았고, 서버는 EOF를 보고 끝났습니다",
    ]);
    Ok(())
}

fn udp_echo(out: &mut Out) -> Step {
    let server = bounded(SockType::Dgram)?;
    server.bind(loopback()).map_err(fail)?;
    let addr = server.local_addr().map_err(fail)?;
    out.say([
        &format!("server: bind on {addr} (no listen, no accept)"),
        &format!("서버: {addr}에 bind (listen도 accept도 없음)"),
    ]);
    let handle = thread::spawn(move || -> sockit::Result<()> {
        let (data, peer) = server.recv_from(65535)?;
        server.send_to(&data, peer)?;
        Ok(())
    });
    let client = bounded(SockType::Dgram)?;
    let msg = b"Hello, datagram";
    client.send_to(msg, &addr).map_err(fail)?;
    let (data, from) = client.recv_from(65535).map_err(fail)?;
    out.line(format!("Received {} from {from}", bytes_repr(&data)));
    handle
        .join()
        .map_err(|_| "the server thread panicked".to_string())?
        .map_err(fail)?;
    if data != msg || from != addr {
        return Err("the datagram did not come back whole from the server".into());
    }
    Ok(())
}

fn timeouts(out: &mut Out) -> Step {
    // Non-blocking: a recv with nothing to read fails at once with EAGAIN.
    let (mut a, _b) = Socket::pair(Family::Unix, SockType::Stream).map_err(fail)?;
    a.set_blocking(false).map_err(fail)?;
    match a.recv(16) {
        Err(e) if e.is_errno(libc::EAGAIN) => out.line(format!(
            "setblocking(False); recv(16) -> {}",
            e.python_text()
        )),
        other => {
            return Err(format!(
                "non-blocking recv gave {}, not EAGAIN",
                outcome(&other)
            ));
        }
    }
    // The slides' timeout server: accept() with settimeout(0.5) and no client.
    let mut s = Socket::new(Family::Inet, SockType::Stream, None).map_err(fail)?;
    s.set_blocking(true).map_err(fail)?;
    s.set_timeout(Some(Duration::from_millis(500)))
        .map_err(fail)?;
    s.bind(loopback()).map_err(fail)?;
    s.listen(1).map_err(fail)?;
    let SockAddr::Ip(addr) = s.local_addr().map_err(fail)? else {
        return Err("no IP address".into());
    };
    out.line(format!("socket : ('{}', {})", addr.ip(), addr.port()));
    let t0 = std::time::Instant::now();
    match s.accept() {
        Err(e) if e.kind() == ErrorKind::Timeout => {
            out.line(format!("timeout : {}", e.python_text()));
            let waited = t0.elapsed();
            let secs = waited.as_secs_f64();
            out.say([
                &format!("(waited {secs:.2} s)"),
                &format!("({secs:.2}초 기다림)"),
            ]);
            if waited < Duration::from_millis(450) {
                return Err(format!("accept gave up after only {waited:?}"));
            }
            Ok(())
        }
        other => Err(format!("accept gave {}, not a timeout", outcome(&other))),
    }
}

fn error_kinds(out: &mut Out) -> Step {
    // socket.error: connect to a port nobody listens on (bound, never listening).
    let closed = Socket::new(Family::Inet, SockType::Stream, None).map_err(fail)?;
    closed.bind(loopback()).map_err(fail)?;
    let addr = closed.local_addr().map_err(fail)?;
    let c = Socket::new(Family::Inet, SockType::Stream, None).map_err(fail)?;
    match c.connect(&addr) {
        Err(e) if e.is_errno(libc::ECONNREFUSED) => out.line(format!(
            "socket.error: connect({addr}) -> {}",
            e.python_text()
        )),
        other => return Err(format!("connect to a closed port gave {}", outcome(&other))),
    }
    // socket.gaierror: the slides' mistyped name, refused without any DNS query.
    for bad in ["www.googlx.co", "256.1.1.1"] {
        match resolve::getaddrinfo(Some(bad), None, None, None, 0, AI_NUMERICHOST) {
            Err(e) if e.kind() == ErrorKind::Gai => out.line(format!(
                "socket.gaierror: getaddrinfo({bad:?}, AI_NUMERICHOST) -> {}",
                e.python_text()
            )),
            other => return Err(format!("{bad} gave {}, not a gaierror", outcome(&other))),
        }
    }
    // socket.herror: shown, not performed (a reverse lookup of an unnamed address would ask
    // a DNS server, and the tour sends nothing off this machine).
    let herror = sockit::Error::host("gethostbyaddr", 1).python_text();
    out.say([
        &format!(
            "socket.herror: gethostbyaddr of an address with no name -> {herror} \
             (shown, not performed: the lookup would ask a DNS server; try: sockit resolve \
             --reverse ADDR)"
        ),
        &format!(
            "socket.herror: 이름 없는 주소의 gethostbyaddr -> {herror} \
             (실행하지 않고 보여 주기만 합니다: 이 조회는 DNS 서버에 묻습니다. 해 보기: sockit \
             resolve --reverse ADDR)"
        ),
    ]);
    // socket.timeout: a recv with a 0.1 s deadline and a silent peer.
    let (mut a, _b) = Socket::pair(Family::Unix, SockType::Stream).map_err(fail)?;
    a.set_timeout(Some(Duration::from_millis(100)))
        .map_err(fail)?;
    match a.recv(1) {
        Err(e) if e.kind() == ErrorKind::Timeout => {
            out.line(format!("socket.timeout: recv -> {}", e.python_text()))
        }
        other => return Err(format!("recv with a deadline gave {}", outcome(&other))),
    }
    Ok(())
}

/// A tiny, strict HTTP/1.1 responder: answers `connections` requests, one per connection —
/// 400 to a request without a `Host` header (as a strict server does), 200 with a short
/// page otherwise. Returns the requests it saw.
fn http_responder(
    listener: Socket,
    connections: usize,
) -> thread::JoinHandle<sockit::Result<Vec<Vec<u8>>>> {
    thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..connections {
            let (mut conn, _) = listener.accept()?;
            conn.set_timeout(Some(STEP_DEADLINE))?;
            let mut request = Vec::new();
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                let chunk = conn.recv(4096)?;
                if chunk.is_empty() {
                    break;
                }
                request.extend_from_slice(&chunk);
            }
            let has_host = String::from_utf8_lossy(&request)
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("host:"));
            let (status, body) = if has_host {
                (
                    "200 OK",
                    "<html><body><h1>Hello from sockit tour</h1></body></html>\n",
                )
            } else {
                ("400 Bad Request", "HTTP/1.1 requires a Host header\n")
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            conn.send_all(reply.as_bytes())?;
            conn.shutdown(Shutdown::Write)?;
            seen.push(request);
        }
        Ok(seen)
    })
}

/// Sends `request` on a new connection to `addr` and reads the reply until the server closes.
fn http_exchange(out: &mut Out, addr: &SockAddr, request: &[u8]) -> Result<Vec<u8>, String> {
    let s = bounded(SockType::Stream)?;
    s.connect(addr).map_err(fail)?;
    s.send_all(request).map_err(fail)?;
    out.line(format!("sendall({})", bytes_repr(request)));
    let mut reply = Vec::new();
    loop {
        let chunk = s.recv(4096).map_err(fail)?;
        if chunk.is_empty() || reply.len() > 1 << 20 {
            break;
        }
        reply.extend_from_slice(&chunk);
    }
    for line in String::from_utf8_lossy(&reply).lines() {
        out.line(format!("| {line}"));
    }
    Ok(reply)
}

fn http_get(out: &mut Out) -> Step {
    let (server, addr) = tcp_listener()?;
    out.say([
        &format!("web server on {addr}"),
        &format!("웹 서버: {addr}"),
    ]);
    let handle = http_responder(server, 2);
    // The slides' bare request: a strict HTTP/1.1 server refuses it, since it has no Host.
    let bare = b"GET / HTTP/1.1\r\n\r\n";
    let reply = http_exchange(out, &addr, bare)?;
    if !reply.starts_with(b"HTTP/1.1 400 ") {
        return Err("a request without Host should get 400".into());
    }
    out.say([
        "(400: HTTP/1.1 needs a Host header; send one)",
        "(400: HTTP/1.1에는 Host 헤더가 필요합니다. 넣어서 다시 보냅니다)",
    ]);
    let with_host = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let reply = http_exchange(out, &addr, with_host.as_bytes())?;
    let seen = handle
        .join()
        .map_err(|_| "the web server thread panicked".to_string())?
        .map_err(fail)?;
    if seen.first().map(Vec::as_slice) != Some(&bare[..]) {
        return Err("the server did not receive the exact request bytes".into());
    }
    if !reply.starts_with(b"HTTP/1.1 200 OK\r\n") {
        return Err("the reply is not an HTTP 200".into());
    }
    Ok(())
}

/// The Korean particle "to" after `text` read aloud: 으로 after a final consonant other
/// than ㄹ, 로 otherwise. An address ends in a digit: 0 (영), 3 (삼) and 6 (육) end in a
/// consonant, 1 (일), 7 (칠) and 8 (팔) in ㄹ, the others in a vowel.
fn ro(text: &str) -> &'static str {
    match text.chars().last() {
        Some('0' | '3' | '6') => "으로",
        _ => "로",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_particle_fits_the_last_digit() {
        // Regression: "127.0.0.1:40000로" (영 ends in a consonant: 으로).
        assert_eq!(ro("127.0.0.1:40000"), "으로");
        assert_eq!(ro("127.0.0.1:40003"), "으로");
        assert_eq!(ro("127.0.0.1:40006"), "으로");
        for d in ['1', '2', '4', '5', '7', '8', '9'] {
            assert_eq!(ro(&format!("127.0.0.1:4000{d}")), "로", "{d}");
        }
    }

    #[test]
    fn wrap_keeps_words() {
        assert_eq!(wrap("aa bb cc", 5, "> "), "> aa bb\n> cc");
    }
}
