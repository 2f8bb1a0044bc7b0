//! The text a call keeps from its INVITE (users, tags, User-Agent, SDP traits), packed into one
//! allocation: a busy edge tracks hundreds of thousands of calls, and a dozen small strings
//! per call would cost more than the call itself.

/// The packed fields, in storage order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    FromTag,
    FromUser,
    PaiUser,
    RuriUser,
    UserAgent,
    SdpOriginUser,
    SdpConnAddr,
    /// Codec names separated by '\n'.
    Codecs,
}

const FIELDS: usize = 8;

/// Longest value kept per field; the rest of a hostile value is cut.
pub const MAX_FIELD: usize = 128;

#[derive(Clone, Debug, Default)]
pub struct Texts {
    buf: Box<[u8]>,
    ends: [u16; FIELDS],
    present: u8,
}

/// Collects the fields, then packs them once.
#[derive(Default)]
pub struct TextsBuilder {
    buf: Vec<u8>,
    ends: [u16; FIELDS],
    present: u8,
    next: usize,
}

impl TextsBuilder {
    /// Sets `field` (fields must be set in storage order; skipped ones are absent).
    pub fn set(&mut self, field: Field, value: Option<&[u8]>) {
        let i = field as usize;
        debug_assert!(i >= self.next, "fields are packed in order");
        for j in self.next..i {
            self.ends[j] = self.buf.len() as u16;
        }
        if let Some(v) = value {
            self.buf.extend_from_slice(&v[..v.len().min(MAX_FIELD)]);
            self.present |= 1 << i;
        }
        self.ends[i] = self.buf.len() as u16;
        self.next = i + 1;
    }

    /// Appends one item to the '\n'-separated `Codecs` field (the last field).
    pub fn push_codec(&mut self, codec: &[u8]) {
        let i = Field::Codecs as usize;
        if self.next <= i {
            self.set(Field::Codecs, Some(b""));
        }
        if self.buf.len() > usize::from(self.ends[i - 1]) {
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(&codec[..codec.len().min(32)]);
        self.ends[i] = self.buf.len() as u16;
    }

    pub fn build(mut self) -> Texts {
        for j in self.next..FIELDS {
            self.ends[j] = self.buf.len() as u16;
        }
        Texts {
            buf: self.buf.into_boxed_slice(),
            ends: self.ends,
            present: self.present,
        }
    }
}

impl Texts {
    pub fn get(&self, field: Field) -> Option<&[u8]> {
        let i = field as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 {
            0
        } else {
            usize::from(self.ends[i - 1])
        };
        self.buf.get(start..usize::from(self.ends[i]))
    }

    /// The field as text (invalid UTF-8 replaced), for records.
    pub fn string(&self, field: Field) -> Option<String> {
        self.get(field)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn codecs(&self) -> Vec<String> {
        self.get(Field::Codecs)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.split(|&b| b == b'\n')
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_present_and_absent_fields() {
        let mut b = TextsBuilder::default();
        b.set(Field::FromTag, Some(b"abc"));
        b.set(Field::PaiUser, Some(b"+12025550143"));
        b.set(Field::UserAgent, Some(&[b'x'; 500]));
        b.push_codec(b"PCMU/8000");
        b.push_codec(b"PCMA/8000");
        let t = b.build();
        assert_eq!(t.get(Field::FromTag), Some(&b"abc"[..]));
        assert_eq!(t.get(Field::FromUser), None);
        assert_eq!(t.string(Field::PaiUser).as_deref(), Some("+12025550143"));
        assert_eq!(t.get(Field::UserAgent).unwrap().len(), MAX_FIELD);
        assert_eq!(t.get(Field::SdpConnAddr), None);
        assert_eq!(t.codecs(), vec!["PCMU/8000", "PCMA/8000"]);
        let empty = TextsBuilder::default().build();
        assert_eq!(empty.get(Field::Codecs), None);
        assert!(empty.codecs().is_empty());
    }

    #[test]
    fn empty_value_is_present() {
        let mut b = TextsBuilder::default();
        b.set(Field::FromUser, Some(b""));
        let t = b.build();
        assert_eq!(t.get(Field::FromUser), Some(&b""[..]));
        assert_eq!(t.get(Field::FromTag), None);
    }
}
