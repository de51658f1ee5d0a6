//! SPDY/3.1 framing, the part Kubernetes' streams need: kubectl tunnels a SPDY/3.1 session
//! inside WebSocket binary messages for port-forward (`SPDY/3.1+portforward.k8s.io`), and
//! speaks plain SPDY/3.1 when it falls back (exec, attach, port-forward). No maintained Rust
//! crate speaks SPDY/3.1 under a licence this project can use (spdy-mux is GPL-3.0-only),
//! hence this module.
//!
//! Frame layouts are those of the SPDY/3 draft (section 2.2 control and data frames, 2.6 the
//! control frame types) as moby/spdystream (`spdy/read.go`, `spdy/write.go`), the library
//! client-go uses, reads and writes them. Name/value header blocks are compressed with one zlib
//! stream per direction, primed with the SPDY/3 dictionary, each block ending at a sync flush.
//! Flow control (WINDOW_UPDATE, SETTINGS) is parsed and ignored: spdystream does not use it.

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Data frame / control frame flag: the sender's side of the stream is done.
pub const FLAG_FIN: u8 = 0x01;

const VERSION: u16 = 3;
const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;
/// Header blocks bigger than this (decompressed) are refused: port-forward sends three headers.
const MAX_HEADER_BLOCK: usize = 1 << 20;

/// One SPDY frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// SYN_STREAM: the peer opens a stream.
    SynStream {
        /// Stream id (odd from clients).
        stream_id: u32,
        /// `FLAG_FIN` and/or unidirectional (0x02).
        flags: u8,
        /// Name/value headers, names lower-case.
        headers: Vec<(String, String)>,
    },
    /// SYN_REPLY: accepts a stream.
    SynReply {
        /// Stream id.
        stream_id: u32,
        /// Flags.
        flags: u8,
        /// Headers.
        headers: Vec<(String, String)>,
    },
    /// RST_STREAM: aborts a stream.
    RstStream {
        /// Stream id.
        stream_id: u32,
        /// Status code (1 protocol error, 5 cancel, ...).
        status: u32,
    },
    /// PING: answered by echoing it.
    Ping {
        /// Ping id (odd from clients).
        id: u32,
    },
    /// GOAWAY: the peer ends the session.
    GoAway {
        /// Last stream the sender accepted.
        last_good_stream_id: u32,
        /// Status.
        status: u32,
    },
    /// HEADERS: more headers for a stream.
    Headers {
        /// Stream id.
        stream_id: u32,
        /// Flags.
        flags: u8,
        /// Headers.
        headers: Vec<(String, String)>,
    },
    /// SETTINGS or WINDOW_UPDATE: flow-control frames, read and ignored.
    Ignored {
        /// Control frame type.
        frame_type: u16,
    },
    /// DATA.
    Data {
        /// Stream id.
        stream_id: u32,
        /// `FLAG_FIN`.
        flags: u8,
        /// Payload.
        data: Bytes,
    },
}

impl Frame {
    /// The value of header `name` (lower-case), if present.
    pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Errors of the SPDY session; any of them ends it.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// A control frame of another SPDY version.
    #[error("unsupported SPDY version {0} (expected 3)")]
    Version(u16),
    /// A control frame whose type this module does not know.
    #[error("unknown SPDY control frame type {0}")]
    UnknownType(u16),
    /// A frame too short for its type.
    #[error("malformed SPDY {kind} frame: {why}")]
    Malformed {
        /// Frame type.
        kind: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The zlib stream of header blocks is broken.
    #[error("SPDY header block compression: {0}")]
    Compression(String),
}

fn malformed(kind: &'static str, why: impl Into<String>) -> SpdyError {
    SpdyError::Malformed { kind, why: why.into() }
}

/// The SPDY/3 header compression dictionary (SPDY/3 draft, section 2.6.10.1): the listed
/// words, each preceded by its 32-bit big-endian length, then a run of common values.
fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut out = Vec::with_capacity(1500);
    for w in WORDS {
        out.extend_from_slice(&(w.len() as u32).to_be_bytes());
        out.extend_from_slice(w.as_bytes());
    }
    out.extend_from_slice(TAIL.as_bytes());
    out
}

/// One side of a SPDY session: parses the peer's frames from a byte stream and encodes this
/// side's frames, each with its own header-compression context.
pub struct Codec {
    buf: BytesMut,
    inflate: Decompress,
    deflate: Compress,
    dictionary: Vec<u8>,
    deflate_primed: bool,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").field("buffered", &self.buf.len()).finish()
    }
}

impl Default for Codec {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec {
    /// A codec at the start of a session.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::new(),
            inflate: Decompress::new(true),
            // spdystream compresses with zlib.BestCompression; any level decodes the same.
            deflate: Compress::new(Compression::best(), true),
            dictionary: dictionary(),
            deflate_primed: false,
        }
    }

    /// Appends bytes received from the peer (WebSocket messages split frames anywhere).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `None` until enough bytes were fed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let len = (usize::from(self.buf[5]) << 16) | (usize::from(self.buf[6]) << 8) | usize::from(self.buf[7]);
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(8 + len).freeze();
        let first = frame.get_u32();
        let flags = frame.get_u8();
        frame.advance(3);
        if first & 0x8000_0000 == 0 {
            let stream_id = first & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(malformed("DATA", "stream id 0"));
            }
            return Ok(Some(Frame::Data { stream_id, flags, data: frame }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let frame_type = (first & 0xffff) as u16;
        self.control(frame_type, flags, frame).map(Some)
    }

    fn control(&mut self, frame_type: u16, flags: u8, mut p: Bytes) -> Result<Frame, SpdyError> {
        let need = |kind: &'static str, p: &Bytes, n: usize| {
            if p.len() < n { Err(malformed(kind, format!("{} bytes, need at least {n}", p.len()))) } else { Ok(()) }
        };
        Ok(match frame_type {
            TYPE_SYN_STREAM => {
                need("SYN_STREAM", &p, 10)?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                p.advance(6); // associated stream id, priority, slot
                let headers = self.read_headers(&p)?;
                Frame::SynStream { stream_id, flags, headers }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                need("SYN_REPLY", &p, 4)?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let headers = self.read_headers(&p)?;
                if frame_type == TYPE_SYN_REPLY {
                    Frame::SynReply { stream_id, flags, headers }
                } else {
                    Frame::Headers { stream_id, flags, headers }
                }
            }
            TYPE_RST_STREAM => {
                need("RST_STREAM", &p, 8)?;
                Frame::RstStream { stream_id: p.get_u32() & 0x7fff_ffff, status: p.get_u32() }
            }
            TYPE_PING => {
                need("PING", &p, 4)?;
                Frame::Ping { id: p.get_u32() }
            }
            TYPE_GOAWAY => {
                need("GOAWAY", &p, 8)?;
                Frame::GoAway { last_good_stream_id: p.get_u32() & 0x7fff_ffff, status: p.get_u32() }
            }
            TYPE_SETTINGS | TYPE_WINDOW_UPDATE => Frame::Ignored { frame_type },
            other => return Err(SpdyError::UnknownType(other)),
        })
    }

    /// Inflates one header block (continuing the session's zlib stream) and parses it.
    fn read_headers(&mut self, compressed: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let mut out = Vec::with_capacity(compressed.len() * 4 + 64);
        let mut input = compressed;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(out.len().max(256));
            }
            let before_in = self.inflate.total_in();
            let status = match self.inflate.decompress_vec(input, &mut out, FlushDecompress::Sync) {
                Ok(s) => s,
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(&self.dictionary).map_err(|e| SpdyError::Compression(e.to_string()))?;
                    Status::Ok
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            };
            let used = usize::try_from(self.inflate.total_in() - before_in).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            if out.len() > MAX_HEADER_BLOCK {
                return Err(malformed("header block", "larger than 1 MiB"));
            }
            // Done once all input is consumed and the inflater has room left over (it would
            // have filled the buffer had it more to give).
            if input.is_empty() && out.capacity() > out.len() {
                break;
            }
            if status == Status::StreamEnd {
                return Err(SpdyError::Compression("the header zlib stream ended".into()));
            }
        }
        parse_header_block(&out)
    }

    /// Encodes a frame of this side; compresses header blocks.
    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::new();
        match frame {
            Frame::Data { stream_id, flags, data } => {
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                push_flags_len(&mut out, *flags, data.len())?;
                out.extend_from_slice(data);
            }
            Frame::SynStream { stream_id, flags, headers } => {
                let block = self.write_headers(headers)?;
                let mut p = Vec::with_capacity(10 + block.len());
                p.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                p.extend_from_slice(&block);
                control(&mut out, TYPE_SYN_STREAM, *flags, &p)?;
            }
            Frame::SynReply { stream_id, flags, headers } | Frame::Headers { stream_id, flags, headers } => {
                let block = self.write_headers(headers)?;
                let mut p = Vec::with_capacity(4 + block.len());
                p.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                p.extend_from_slice(&block);
                let t = if matches!(frame, Frame::SynReply { .. }) { TYPE_SYN_REPLY } else { TYPE_HEADERS };
                control(&mut out, t, *flags, &p)?;
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(&mut out, TYPE_RST_STREAM, 0, &p)?;
            }
            Frame::Ping { id } => control(&mut out, TYPE_PING, 0, &id.to_be_bytes())?,
            Frame::GoAway { last_good_stream_id, status } => {
                let mut p = (last_good_stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(&mut out, TYPE_GOAWAY, 0, &p)?;
            }
            Frame::Ignored { frame_type } => return Err(SpdyError::UnknownType(*frame_type)),
        }
        Ok(out)
    }

    fn write_headers(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            let k = k.to_ascii_lowercase();
            raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        if !self.deflate_primed {
            self.deflate.set_dictionary(&self.dictionary).map_err(|e| SpdyError::Compression(e.to_string()))?;
            self.deflate_primed = true;
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = raw.as_slice();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.len().max(64));
            }
            let before_in = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            let used = usize::try_from(self.deflate.total_in() - before_in).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            if input.is_empty() && out.capacity() > out.len() {
                break;
            }
        }
        Ok(out)
    }
}

fn push_flags_len(out: &mut Vec<u8>, flags: u8, len: usize) -> Result<(), SpdyError> {
    if len >= 1 << 24 {
        return Err(malformed("frame", format!("payload of {len} bytes exceeds 2^24-1")));
    }
    out.push(flags);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    Ok(())
}

fn control(out: &mut Vec<u8>, frame_type: u16, flags: u8, payload: &[u8]) -> Result<(), SpdyError> {
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    push_flags_len(out, flags, payload.len())?;
    out.extend_from_slice(payload);
    Ok(())
}

fn parse_header_block(mut b: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let take = |b: &mut &[u8], what: &str| -> Result<String, SpdyError> {
        if b.len() < 4 {
            return Err(malformed("header block", format!("truncated before the length of {what}")));
        }
        let n = (&b[..4]).get_u32() as usize;
        *b = &b[4..];
        if b.len() < n {
            return Err(malformed("header block", format!("{what} of {n} bytes truncated")));
        }
        let s = String::from_utf8_lossy(&b[..n]).into_owned();
        *b = &b[n..];
        Ok(s)
    };
    if b.len() < 4 {
        return Err(malformed("header block", "no header count"));
    }
    let count = (&b[..4]).get_u32();
    b = &b[4..];
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = take(&mut b, "a header name")?.to_ascii_lowercase();
        let value = take(&mut b, "a header value")?;
        headers.push((name, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn dictionary_matches_the_spdy3_table() {
        let d = dictionary();
        // SPDY/3 draft 2.6.10.1 prints the dictionary as 8-byte rows: 1423 bytes in all.
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..8], &[0, 0, 0, 7, b'o', b'p', b't', b'i']);
        assert_eq!(&d[8 * 43..8 * 44], &[0, 4, b'd', b'a', b't', b'e', 0, 0]);
        assert_eq!(&d[8 * 106..8 * 107], b"n1001012");
        assert_eq!(&d[1416..], b",enq=0.");
    }

    #[test]
    fn control_frames_round_trip_through_one_compression_context() {
        let (mut client, mut server) = (Codec::new(), Codec::new());
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                flags: 0,
                headers: h(&[("streamtype", "error"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynStream {
                stream_id: 3,
                flags: 0,
                headers: h(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::Data { stream_id: 3, flags: 0, data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n") },
            Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() },
            Frame::Ping { id: 1 },
            Frame::RstStream { stream_id: 3, status: 5 },
            Frame::GoAway { last_good_stream_id: 3, status: 0 },
        ];
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(client.encode(f).unwrap());
        }
        // WebSocket messages may cut frames anywhere: feed one byte at a time.
        let mut got = Vec::new();
        for b in wire {
            server.feed(&[b]);
            while let Some(f) = server.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn replies_decode_on_the_other_side_and_names_are_lower_cased() {
        let (mut server, mut client) = (Codec::new(), Codec::new());
        for id in [1u32, 3, 5] {
            let bytes = server.encode(&Frame::SynReply { stream_id: id, flags: 0, headers: vec![] }).unwrap();
            client.feed(&bytes);
            assert_eq!(
                client.next_frame().unwrap(),
                Some(Frame::SynReply { stream_id: id, flags: 0, headers: vec![] })
            );
        }
        let bytes = server.encode(&Frame::Headers { stream_id: 1, flags: 0, headers: h(&[("X-Up", "a")]) }).unwrap();
        client.feed(&bytes);
        assert_eq!(
            client.next_frame().unwrap(),
            Some(Frame::Headers { stream_id: 1, flags: 0, headers: h(&[("x-up", "a")]) })
        );
    }

    #[test]
    fn wire_layout_of_data_and_ping_frames() {
        let mut c = Codec::new();
        let data = c.encode(&Frame::Data { stream_id: 5, flags: FLAG_FIN, data: Bytes::from_static(b"ab") }).unwrap();
        assert_eq!(data, [0, 0, 0, 5, 1, 0, 0, 2, b'a', b'b']);
        let ping = c.encode(&Frame::Ping { id: 7 }).unwrap();
        assert_eq!(ping, [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7]);
    }

    #[test]
    fn bad_input_is_an_error_naming_the_problem() {
        let mut c = Codec::new();
        c.feed(&[0x80, 2, 0, 1, 0, 0, 0, 0]);
        assert!(matches!(c.next_frame(), Err(SpdyError::Version(2))));
        let mut c = Codec::new();
        c.feed(&[0x80, 3, 0, 6, 0, 0, 0, 2, 0, 0]);
        let err = c.next_frame().unwrap_err().to_string();
        assert!(err.contains("PING") && err.contains("need at least 4"), "{err}");
        let mut c = Codec::new();
        c.feed(&[0x80, 3, 0, 2, 0, 0, 0, 6, 0, 0, 0, 1, 0xff, 0xff]);
        assert!(matches!(c.next_frame(), Err(SpdyError::Compression(_))));
    }
}
