//! Parsing of stream replies (RESP2 arrays and RESP3 maps) without copying field bytes.

use redis::Value;

use super::entry::EntryId;

/// An entry as received: `None` fields mean the entry was deleted from the stream while it was
/// pending (XREADGROUP history reads report those with a nil body).
pub(crate) type Fields = Option<Vec<(Vec<u8>, Vec<u8>)>>;
pub(crate) type Entries = Vec<(EntryId, Fields)>;

fn short(v: &Value) -> String {
    let mut s = format!("{v:?}");
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn bytes(v: Value) -> Result<Vec<u8>, String> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::VerbatimString { text, .. } => Ok(text.into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(short(&other)),
    }
}

fn items(v: Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        Value::Map(m) => Ok(m.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        other => Err(short(&other)),
    }
}

/// A list of `[id, [field, value, …] | nil]` entries.
pub(crate) fn entries(v: Value) -> Result<Entries, String> {
    let list = items(v)?;
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let mut parts = items(entry)?.into_iter();
        let id_bytes = bytes(parts.next().ok_or("entry without id")?)?;
        let id = EntryId::parse_bytes(&id_bytes)
            .ok_or_else(|| format!("bad entry id {:?}", String::from_utf8_lossy(&id_bytes)))?;
        let fields = match parts.next() {
            None | Some(Value::Nil) => None,
            Some(body) => {
                let flat = items(body)?;
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                let mut it = flat.into_iter();
                while let Some(k) = it.next() {
                    let v = it.next().ok_or("odd number of field/value items")?;
                    pairs.push((bytes(k)?, bytes(v)?));
                }
                Some(pairs)
            }
        };
        out.push((id, fields));
    }
    Ok(out)
}

/// XREADGROUP reply for one stream: nil, `[[stream, entries]]` or `{stream: entries}`.
pub(crate) fn read_reply(v: Value) -> Result<Entries, String> {
    let streams = items(v)?;
    let mut it = streams.into_iter();
    match it.next() {
        None => Ok(Vec::new()),
        // RESP3 map flattened to [stream, entries]
        Some(first @ (Value::BulkString(_) | Value::SimpleString(_))) => {
            let _ = first;
            entries(it.next().unwrap_or(Value::Nil))
        }
        Some(pair) => {
            let mut p = items(pair)?.into_iter();
            let _stream = p.next();
            entries(p.next().unwrap_or(Value::Nil))
        }
    }
}

/// XAUTOCLAIM reply: `[next-cursor, entries, deleted-ids]`.
pub(crate) fn autoclaim_reply(v: Value) -> Result<(EntryId, Entries), String> {
    let mut it = items(v)?.into_iter();
    let cursor = bytes(it.next().ok_or("missing cursor")?)?;
    let cursor = EntryId::parse_bytes(&cursor).ok_or("bad cursor")?;
    let claimed = entries(it.next().unwrap_or(Value::Nil))?;
    Ok((cursor, claimed))
}

/// XPENDING summary reply: `[count, min, max, consumers]`; returns the count.
pub(crate) fn pending_count(v: Value) -> Result<u64, String> {
    let mut it = items(v)?.into_iter();
    match it.next() {
        Some(Value::Int(n)) => Ok(u64::try_from(n).unwrap_or(0)),
        Some(other) => Err(short(&other)),
        None => Ok(0),
    }
}
