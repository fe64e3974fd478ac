//! json format (in progress).
use super::{LossEvent, NameTables, Names};
use crate::decode::Decoded;
use crate::packet::Packet;
pub(crate) fn object(
    _t: &NameTables,
    _p: &Packet<'_>,
    _d: &Decoded<'_>,
    _n: &dyn Names,
    _out: &mut Vec<u8>,
) {
}
pub(crate) fn loss(_ev: &LossEvent, _out: &mut Vec<u8>) {}
