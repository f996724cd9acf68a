//! Tests of `sockit tour`: every step of the slides behaves, in English and in Korean.

use std::time::Duration;

use crate::common::{run, sockit};

#[test]
fn tour_runs_every_program_of_the_slides() {
    let out = run(&mut sockit(&["tour"]), Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tour failed:\n{text}");
    for want in [
        "gethostbyname('localhost') -> \"127.0.0.1\"",
        "getservbyport(80, 'tcp') -> \"http\"",
        "getservbyport(53, 'tcp') -> \"domain\"",
        "getservbyport(25, 'tcp') -> \"smtp\"",
        "Received b'Hello, world'",
        "Received b'Hello, datagram'",
        "timeout : timed out",
        "[Errno 111] Connection refused",
        "[Errno -2] Name or service not known",
        "| HTTP/1.1 400 Bad Request",
        "| HTTP/1.1 200 OK",
        "tour: 7 of 7 steps ok",
    ] {
        assert!(text.contains(want), "tour output lacks {want:?}:\n{text}");
    }
    assert!(!text.contains("FAILED"), "{text}");
}

#[test]
fn tour_in_korean() {
    let out = run(
        &mut sockit(&["tour", "--lang", "ko"]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tour --lang ko failed:\n{text}");
    assert!(text.contains("소켓 생성"), "{text}");
    assert!(text.contains("투어: 7단계 중 7단계 성공"), "{text}");
    assert!(text.contains("timeout : timed out"), "{text}");
}

#[test]
fn tour_refuses_an_unknown_language() {
    let out = run(
        &mut sockit(&["tour", "--lang", "xx"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
}
