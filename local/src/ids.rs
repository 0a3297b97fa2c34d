//! Identifiers in the formats AWS uses: connection and message ids like
//! `R1kmxc2VNjMCFIA=` (twelve base64 characters and `=`), request ids as UUIDs.

use base64::Engine;
use rand::Rng;

/// An API Gateway connection, message or request id: 11 random bytes, base64 (ending `=`).
pub fn gateway_id() -> String {
    let mut bytes = [0u8; 11];
    rand::rng().fill(&mut bytes[..]);
    // 11 bytes encode to 16 characters ending in one `=`, the shape of AWS's ids.
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A Lambda request id (UUID v4 text form).
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// `bytes` random bytes as lowercase hex.
pub fn hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// `chars` random characters of RFC 4648's base32 alphabet (`A-Z`, `2-7`): access key
/// ids, secrets and session tokens of the stack's made-up credentials.
pub fn base32(chars: usize) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    (0..chars)
        .map(|_| char::from(ALPHABET[rng.random_range(0..32)]))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_aws_shapes() {
        let id = super::gateway_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('=') && !id.ends_with("=="), "{id}");
        let uuid = super::uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert_ne!(super::gateway_id(), super::gateway_id());
    }
}
