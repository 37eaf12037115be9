//! XXH64 (Yann Collet's xxHash, 64-bit variant), streaming. Used for cache keys and
//! entry checksums: its output is fixed by its specification (unlike std's
//! `DefaultHasher`, which may change between Rust releases) and it hashes at memory
//! speed, so verifying a 100 MB entry costs little next to reading it.

const PRIME_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME_5: u64 = 0x27D4_EB2F_1656_67C5;

/// Bytes consumed per round of the four accumulators.
const STRIPE: usize = 32;

/// An XXH64 state that takes input in pieces of any size.
#[derive(Debug, Clone)]
pub(crate) struct Xxh64 {
    seed: u64,
    acc: [u64; 4],
    pending: [u8; STRIPE],
    pending_len: usize,
    total: u64,
}

impl Xxh64 {
    /// A fresh state.
    pub(crate) fn new(seed: u64) -> Xxh64 {
        Xxh64 {
            seed,
            acc: [
                seed.wrapping_add(PRIME_1).wrapping_add(PRIME_2),
                seed.wrapping_add(PRIME_2),
                seed,
                seed.wrapping_sub(PRIME_1),
            ],
            pending: [0; STRIPE],
            pending_len: 0,
            total: 0,
        }
    }

    /// Hashes `data` after everything given before.
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.pending_len > 0 {
            let take = (STRIPE - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len < STRIPE {
                return;
            }
            let stripe = self.pending;
            self.consume(&stripe);
            self.pending_len = 0;
        }
        let mut stripes = data.chunks_exact(STRIPE);
        for stripe in &mut stripes {
            self.consume(stripe);
        }
        let rest = stripes.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// The hash of everything given so far.
    pub(crate) fn finish(&self) -> u64 {
        let mut h = if self.total >= STRIPE as u64 {
            let [a, b, c, d] = self.acc;
            let mut h = a
                .rotate_left(1)
                .wrapping_add(b.rotate_left(7))
                .wrapping_add(c.rotate_left(12))
                .wrapping_add(d.rotate_left(18));
            for acc in self.acc {
                h = (h ^ round(0, acc))
                    .wrapping_mul(PRIME_1)
                    .wrapping_add(PRIME_4);
            }
            h
        } else {
            self.seed.wrapping_add(PRIME_5)
        };
        h = h.wrapping_add(self.total);

        let mut rest = &self.pending[..self.pending_len];
        while rest.len() >= 8 {
            h ^= round(0, le_u64(rest));
            h = h
                .rotate_left(27)
                .wrapping_mul(PRIME_1)
                .wrapping_add(PRIME_4);
            rest = &rest[8..];
        }
        if rest.len() >= 4 {
            let mut word = [0u8; 4];
            word.copy_from_slice(&rest[..4]);
            let word = u32::from_le_bytes(word);
            h ^= u64::from(word).wrapping_mul(PRIME_1);
            h = h
                .rotate_left(23)
                .wrapping_mul(PRIME_2)
                .wrapping_add(PRIME_3);
            rest = &rest[4..];
        }
        for &byte in rest {
            h ^= u64::from(byte).wrapping_mul(PRIME_5);
            h = h.rotate_left(11).wrapping_mul(PRIME_1);
        }

        h ^= h >> 33;
        h = h.wrapping_mul(PRIME_2);
        h ^= h >> 29;
        h = h.wrapping_mul(PRIME_3);
        h ^ (h >> 32)
    }

    /// One 32-byte stripe into the four accumulators.
    fn consume(&mut self, stripe: &[u8]) {
        for (acc, lane) in self.acc.iter_mut().zip(stripe.chunks_exact(8)) {
            *acc = round(*acc, le_u64(lane));
        }
    }
}

/// The little-endian u64 in the first 8 bytes of `bytes`.
fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(PRIME_2))
        .rotate_left(31)
        .wrapping_mul(PRIME_1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oneshot(seed: u64, data: &[u8]) -> u64 {
        let mut h = Xxh64::new(seed);
        h.update(data);
        h.finish()
    }

    /// Values of the C reference implementation (xxHash's `XXH64`), as the `twox-hash`
    /// crate's tests record them.
    #[test]
    fn matches_the_reference_implementation() {
        let hundred: Vec<u8> = (0..100u8).collect();
        assert_eq!(oneshot(0, b""), 0xef46_db37_51d8_e999);
        assert_eq!(oneshot(0, &[42]), 0x0a9e_dece_beb0_3ae4);
        assert_eq!(oneshot(0, b"Hello, world!\0"), 0x7b06_c531_ea43_e89f);
        assert_eq!(oneshot(0, &hundred), 0x6ac1_e580_3216_6597);
        assert_eq!(oneshot(0xae05_4331_1b70_2d91, b""), 0x4b6a_04fc_df7a_4672);
        assert_eq!(
            oneshot(0xae05_4331_1b70_2d91, &hundred),
            0x567e_355e_0682_e1f1
        );
        assert_eq!(oneshot(u64::MAX - PRIME_5, b"x"), 0xf953_d52c_12a9_f5fb);
    }

    #[test]
    fn pieces_of_any_size_give_the_one_shot_hash() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let whole = oneshot(7, &data);
        for piece in [1, 3, 8, 31, 32, 33, 100, 999] {
            let mut h = Xxh64::new(7);
            for chunk in data.chunks(piece) {
                h.update(chunk);
            }
            assert_eq!(h.finish(), whole, "pieces of {piece} bytes");
        }
    }
}
