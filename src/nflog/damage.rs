//! Test support: a seeded generator of damaged and random NFLOG messages, for the property
//! tests that hold the attribute scan (`capture::record`) and the attribute walk (`attr`) to
//! their reference implementations on hostile input.

/// Deterministic (xorshift64) so a failure names a message that can be rebuilt.
pub struct Damager {
    x: u64,
}

impl Damager {
    pub fn new(seed: u64) -> Damager {
        Damager { x: seed | 1 }
    }

    pub fn word(&mut self) -> u64 {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x
    }

    /// `base` with up to three bytes changed, then cut short, extended by random bytes,
    /// replaced by random bytes altogether, or left at that (one way each in five).
    pub fn damage(&mut self, base: &[u8]) -> Vec<u8> {
        let mut m = base.to_vec();
        for _ in 0..self.word() % 4 {
            if m.is_empty() {
                break;
            }
            let at = (self.word() as usize) % m.len();
            m[at] = self.word() as u8;
        }
        match self.word() % 5 {
            0 => m.truncate((self.word() as usize) % (m.len() + 1)),
            1 => {
                let n = self.word() % 12;
                m.extend((0..n).map(|_| self.word() as u8));
            }
            2 => {
                let n = self.word() % 64;
                m = (0..n).map(|_| self.word() as u8).collect();
            }
            _ => {}
        }
        m
    }
}
