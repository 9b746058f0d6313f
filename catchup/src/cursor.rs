//! A bounds-checked reader over an event body: every read names what was missing instead of
//! panicking.

pub(crate) struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Cursor { b, at: 0 }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .b
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| format!("needs {n} bytes at {} of {}", self.at, self.b.len()))?;
        self.at += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian unsigned integer of `n` bytes.
    pub(crate) fn le(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |a, x| (a << 8) | u64::from(*x)))
    }

    /// MySQL's length-encoded (packed) integer.
    pub(crate) fn lenenc(&mut self) -> Result<u64, String> {
        match self.u8()? {
            x @ 0..=250 => Ok(u64::from(x)),
            252 => self.le(2),
            253 => self.le(3),
            254 => self.le(8),
            x => Err(format!("bad length-encoded integer prefix {x}")),
        }
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.b[self.at.min(self.b.len())..]
    }

    pub(crate) fn left(&self) -> usize {
        self.b.len().saturating_sub(self.at)
    }
}
