//! `-v`: the exchange's events on stderr in curl's style (`*` info, `>` sent, `<`
//! received).

use std::io::{self, Write};

use sockit::http::Event;

/// `-v`: one event on stderr, curl's style (`*` info, `>` sent, `<` received).
pub fn verbose_event(ev: &Event<'_>) {
    let mut err = io::stderr().lock();
    let _ = match ev {
        Event::Resolved(addrs) => writeln!(
            err,
            "* resolved: {}",
            addrs
                .iter()
                .map(sockit::addr::host_text)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Event::Connecting(addrs) => writeln!(
            err,
            "* connecting (Happy Eyeballs, RFC 8305) to {}",
            addrs
                .iter()
                .map(|a| format!("{} port {}", sockit::addr::host_text(a), a.port()))
                .collect::<Vec<_>>()
                .join(", then ")
        ),
        Event::Connected {
            local,
            peer,
            attempts,
        } => writeln!(
            err,
            "* connected to {} port {} from {} port {} ({attempts} attempt{})",
            sockit::addr::host_text(peer),
            peer.port(),
            sockit::addr::host_text(local),
            local.port(),
            if *attempts == 1 { "" } else { "s" }
        ),
        Event::ConnectedUnix(path) => {
            writeln!(err, "* connected to unix socket {}", path.display())
        }
        Event::Reused => writeln!(err, "* re-using the connection (keep-alive)"),
        Event::TlsDone(info) => writeln!(
            err,
            "* TLS handshake done: {} {}, ALPN {}",
            info.version,
            info.cipher,
            info.alpn.as_deref().unwrap_or("none")
        ),
        Event::SentBody(n) => writeln!(err, "> [{n} bytes of body]"),
        Event::Sent(bytes) => write_head_lines(&mut err, '>', bytes, true),
        Event::HeadReceived(bytes, _) => write_head_lines(&mut err, '<', bytes, false),
        Event::BodyReceived(bytes) => writeln!(err, "< [{} bytes]", bytes.len()),
    };
}

/// Head lines with a prefix; bytes past the head (a request body) as a count.
fn write_head_lines(
    err: &mut impl Write,
    prefix: char,
    bytes: &[u8],
    split_body: bool,
) -> io::Result<()> {
    let end = if split_body {
        bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |p| p + 4)
    } else {
        bytes.len()
    };
    let (head, rest) = bytes.split_at(end);
    for line in head.split_inclusive(|&b| b == b'\n') {
        let line = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        let text = match std::str::from_utf8(line) {
            Ok(t) if !t.chars().any(|c| c.is_control() && c != '\t') => t.to_string(),
            _ => line.escape_ascii().to_string(),
        };
        writeln!(err, "{prefix} {text}")?;
    }
    if !rest.is_empty() {
        writeln!(err, "{prefix} [{} bytes of body]", rest.len())?;
    }
    Ok(())
}
