//! What a `closed` event says about how a relayed stream session moved its bytes: zero-copy
//! (`splice(2)`) or copied, per direction ([`ZeroCopy`]).

use std::fmt;

use serde::{Serialize, Serializer};

use super::{Counters, Direction, Path};

/// How each direction of a relayed stream session moved its bytes, for its `closed` event.
///
/// A direction that moved no byte does not decide (`connect … </dev/null` copies its empty
/// stdin, yet a download that spliced every byte is zero-copy); when no direction moved a
/// byte, both directions' paths decide. Text (`-v`): `zero-copy` or `copied` when the
/// deciding directions agree, else per direction, `zero-copy sent, copied received`
/// (`sent`: to the peer, as the event's `bytes_sent`). JSON: `"zero_copy": true` only when
/// every byte moved spliced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroCopy {
    /// How the bytes sent to the peer moved (`None`: this direction does not decide).
    pub sent: Option<Path>,
    /// How the bytes received from the peer moved (`None`: this direction does not
    /// decide).
    pub received: Option<Path>,
}

impl ZeroCopy {
    /// Every byte went through user space (datagram sessions, taps, TLS).
    pub const COPIED: ZeroCopy = ZeroCopy {
        sent: Some(Path::Copy),
        received: Some(Path::Copy),
    };

    /// True when every byte moved spliced: each deciding direction ran zero-copy (and one
    /// did decide).
    pub fn is_zero_copy(&self) -> bool {
        let decide = [self.sent, self.received];
        decide.iter().any(Option::is_some) && decide.iter().flatten().all(|p| *p == Path::Splice)
    }

    /// The same seen from the other end: `sent` and `received` swapped (a forwarder's
    /// relay counts from the client's side, its `closed` event from the peer's).
    pub fn turned(self) -> ZeroCopy {
        ZeroCopy {
            sent: self.received,
            received: self.sent,
        }
    }
}

impl Counters {
    /// How this relay's directions moved their bytes, oriented as the relay counts them
    /// (`sent`: [`Direction::Send`], local to remote) ([`ZeroCopy`]).
    pub fn zero_copy_by_direction(&self) -> ZeroCopy {
        let t = self.totals();
        let (sent, received) = (self.path(Direction::Send), self.path(Direction::Recv));
        if t.bytes_sent == 0 && t.bytes_received == 0 {
            return ZeroCopy { sent, received };
        }
        ZeroCopy {
            sent: sent.filter(|_| t.bytes_sent > 0),
            received: received.filter(|_| t.bytes_received > 0),
        }
    }
}

fn word(p: Path) -> &'static str {
    match p {
        Path::Splice => "zero-copy",
        Path::Copy => "copied",
    }
}

impl fmt::Display for ZeroCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.sent, self.received) {
            (Some(s), Some(r)) if s != r => write!(f, "{} sent, {} received", word(s), word(r)),
            _ if self.is_zero_copy() => f.write_str("zero-copy"),
            _ => f.write_str("copied"),
        }
    }
}

impl Serialize for ZeroCopy {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bool(self.is_zero_copy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direction_that_moved_nothing_does_not_decide() {
        // Regression (QA splice.md D1): an empty stdin that copied made a fully spliced
        // download say "copied".
        let c = Counters::new();
        c.set_path(Direction::Send, Path::Copy);
        c.set_path(Direction::Recv, Path::Splice);
        c.add(Direction::Recv, 20 << 20, false);
        let z = c.zero_copy_by_direction();
        assert!(z.is_zero_copy());
        assert_eq!(z.to_string(), "zero-copy");
        // both moved, each its own way: said per direction
        c.add(Direction::Send, 5, false);
        let z = c.zero_copy_by_direction();
        assert!(!z.is_zero_copy());
        assert_eq!(z.to_string(), "copied sent, zero-copy received");
        assert_eq!(z.turned().to_string(), "zero-copy sent, copied received");
        assert_eq!(ZeroCopy::COPIED.to_string(), "copied");
        assert_eq!(serde_json::to_string(&z).unwrap(), "false");
    }

    #[test]
    fn nothing_moved_is_decided_by_the_paths() {
        let c = Counters::new();
        c.set_path(Direction::Send, Path::Splice);
        c.set_path(Direction::Recv, Path::Splice);
        assert!(c.zero_copy_by_direction().is_zero_copy());
        assert!(!Counters::new().zero_copy_by_direction().is_zero_copy());
    }
}
