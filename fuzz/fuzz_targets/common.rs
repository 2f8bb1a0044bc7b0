//! Input cursor shared by the fuzz targets: turns one flat fuzzer input into a sequence of
//! records (fixed-size header fields, then a length-prefixed body), so that a target can feed
//! a stateful stage (fragment table, TCP streams, decoder) many packets from one input.
//! It must never panic: every read past the end returns None and the target stops.
#![allow(dead_code)]

pub struct Cursor<'a> {
    pub rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { rest: data }
    }

    pub fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    pub fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Some(a)
    }

    /// A u16 length, then up to that many bytes (the rest of the input when shorter).
    pub fn body(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?).min(self.rest.len());
        self.take(n)
    }
}
