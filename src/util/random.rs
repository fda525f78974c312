//! Randomness from the operating system, for keys, tokens and session ids.

use rand::TryRng;

/// Fills `buf` from the operating system's random generator.
pub fn fill(buf: &mut [u8]) {
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .expect("the operating system's random generator is available");
}

/// `n` random bytes as lower-case hex.
pub fn hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill(&mut b);
    hex::encode(b)
}
