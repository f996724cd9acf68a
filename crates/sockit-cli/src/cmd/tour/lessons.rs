//! The tour's lessons: each a title and explanation (English, Korean) and the step that
//! runs it live.

use std::net::{Ipv4Addr, Shutdown};
use std::thread;
use std::time::Duration;

use sockit::repr::bytes_repr;
use sockit::resolve::{self, AI_NUMERICHOST};
use sockit::socket::SockAddr;
use sockit::{ErrorKind, Family, SockType, Socket};

use super::http::http_get;
use super::{Lesson, Out, Step, bounded, fail, loopback, outcome, ro, tcp_listener};

pub(super) const LESSONS: &[Lesson] = &[
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
