//! A classic pcap writer (microsecond timestamps, Ethernet link type) for the scenario: each
//! SIP message is one Ethernet/IPv4/UDP frame. Frames must be written in time order; the
//! writer refuses a frame that goes back in time rather than write a capture no sniffer makes.

use std::io::{self, Write};

pub struct PcapWriter<W: Write> {
    out: W,
    ip_id: u16,
    last_us: i64,
    pub frames: u64,
    pub bytes: u64,
}

const ETH_HEADER: [u8; 14] = [0, 0, 0x5e, 0, 1, 1, 0, 0, 0x5e, 0, 1, 2, 0x08, 0x00];

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        // Magic (µs), version 2.4, thiszone 0, sigfigs 0, snaplen 65535, LINKTYPE_ETHERNET.
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&65_535u32.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?;
        Ok(PcapWriter {
            out,
            ip_id: 0,
            last_us: i64::MIN,
            frames: 0,
            bytes: 24,
        })
    }

    /// Writes one UDP datagram from `src` to `dst` (port 5060 both ways) at `ts_us`.
    pub fn udp(
        &mut self,
        ts_us: i64,
        src: [u8; 4],
        dst: [u8; 4],
        payload: &[u8],
    ) -> io::Result<()> {
        if ts_us < self.last_us {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame at {ts_us} µs after one at {} µs", self.last_us),
            ));
        }
        let udp_len = 8 + payload.len();
        let ip_len = 20 + udp_len;
        if ip_len > 65_535 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram too large",
            ));
        }
        self.last_us = ts_us;
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let mut sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        let mut udp = [0u8; 8];
        udp[0..2].copy_from_slice(&5060u16.to_be_bytes());
        udp[2..4].copy_from_slice(&5060u16.to_be_bytes());
        udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        let frame_len = (14 + ip_len) as u32;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&(ts_us.div_euclid(1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&(ts_us.rem_euclid(1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&frame_len.to_le_bytes());
        rec[12..16].copy_from_slice(&frame_len.to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&ETH_HEADER)?;
        self.out.write_all(&ip)?;
        self.out.write_all(&udp)?;
        self.out.write_all(payload)?;
        self.frames += 1;
        self.bytes += 16 + u64::from(frame_len);
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_decodable_and_time_ordered() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.udp(
            1_000_000_500,
            [198, 51, 100, 10],
            [192, 0, 2, 1],
            b"OPTIONS sip:a SIP/2.0\r\n\r\n",
        )
        .unwrap();
        assert!(w
            .udp(1_000_000_400, [1, 1, 1, 1], [2, 2, 2, 2], b"x")
            .is_err());
        let bytes = w.finish().unwrap();
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(bytes[24..28].try_into().unwrap()), 1000);
        assert_eq!(u32::from_le_bytes(bytes[28..32].try_into().unwrap()), 500);
        let ip = &bytes[40 + 14..40 + 34];
        let sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff, "IPv4 header checksum");
        assert_eq!(&ip[12..16], &[198, 51, 100, 10]);
    }
}
