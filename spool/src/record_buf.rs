//! The append-only view of the writer's batch buffer that an
//! [`append_with`](crate::Writer::append_with) filler builds its record in.
//!
//! Invariants: a filler can only add bytes after its record header; it can neither shrink the
//! buffer nor rewrite the records before it. If the record is not kept (the filler wrote a
//! length other than the one promised, or panicked), dropping the view takes back the header and
//! everything the filler wrote, so the batch holds exactly the records appended before it.

/// Where a record's payload is built: it can only grow. See the module docs.
pub struct RecordBuf<'a> {
    buf: &'a mut Vec<u8>,
    /// Where this record's header starts: the buffer is cut back to here unless kept.
    record: usize,
    /// Where its payload starts.
    payload: usize,
    keep: bool,
}

impl<'a> RecordBuf<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>, record: usize) -> Self {
        let payload = buf.len();
        RecordBuf {
            buf,
            record,
            payload,
            keep: false,
        }
    }

    /// Append `bytes` to the payload.
    #[inline]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Append one byte to the payload.
    #[inline]
    pub fn push(&mut self, byte: u8) {
        self.buf.push(byte);
    }

    /// Payload bytes written so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len() - self.payload
    }

    /// Whether no payload byte was written yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keep the record in the buffer when this view is dropped.
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for RecordBuf<'_> {
    fn drop(&mut self) {
        if !self.keep {
            self.buf.truncate(self.record);
        }
    }
}
