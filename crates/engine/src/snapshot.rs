//! A page of the master's state on the wire (DESIGN.md §4, catch-up): one JSON shape, the body
//! of `GET /api/offline-sync/snapshot` and the content of the parts the master writes to its
//! snapshot topic; and how a page is cut into parts that each fit a Kafka record and put
//! together again. A page from the wire is untrusted: every member is required and checked,
//! and a page never decompresses to more than [`MAX_PAGE_BYTES`].

use std::io::{Read as _, Write as _};

use base64::Engine as _;
use offline_sync_model::{ContentType, Csn, DocumentId, Fields, Hlc, Seq, ShipId, SnapshotPart};
use offline_sync_storage::{Published, ShipSeq, StoredDoc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::master::Snapshot;

/// The most bytes a page may take, on the link and once decompressed. The master cuts its
/// pages at [`crate::MAX_SNAPSHOT_BYTES`] of fields plus one document, so a page above this
/// is not one the master wrote.
pub const MAX_PAGE_BYTES: u64 = 64 * 1024 * 1024;

/// Base64 characters per part: a part's record stays below the 1 MiB a record may hold.
const PART_CHARS: usize = 768 * 1024;

/// The most parts a page may have: [`MAX_PAGE_BYTES`] compressed, in base64.
const MAX_PARTS: u64 = (MAX_PAGE_BYTES / 3 * 4).div_ceil(PART_CHARS as u64);

impl Snapshot {
    /// The page as JSON: what the master's API answers and what its snapshot parts carry.
    pub fn to_json(&self) -> Value {
        let doc = |d: &StoredDoc| {
            json!({
                "contentType": d.content_type.as_str(),
                "documentId": d.id.to_string(),
                "fields": d.fields,
                "deleted": d.deleted,
                "version": d.version,
            })
        };
        let applied: Vec<Value> = self
            .applied
            .iter()
            .map(|a| {
                json!({
                    "seq": a.seq,
                    "hlc": a.hlc.map(|h| json!({"ms": h.ms, "c": h.c})),
                    "contentType": a.document.as_ref().map(|(ct, _)| ct.as_str()),
                    "documentId": a.document.as_ref().map(|(_, id)| id.to_string()),
                })
            })
            .collect();
        let resolved: Vec<Value> = self
            .resolved
            .iter()
            .map(|(c, ct, id)| json!({"conflict": c, "contentType": ct.as_str(), "documentId": id.to_string()}))
            .collect();
        json!({
            "at": self.at.csn,
            "offset": self.at.next_offset,
            "lastSeq": self.last_seq,
            "resolved": resolved,
            "applied": applied,
            "touched": self.touched.iter().map(doc).collect::<Vec<_>>(),
            "total": self.total,
            "collected": self.collected,
            "documents": self.documents.iter().map(doc).collect::<Vec<_>>(),
            "next": self.next.as_ref().map(|(ct, id)| format!("{}/{id}", ct.as_str())),
        })
    }

    /// Reads a page written by [`Snapshot::to_json`]. Errors: [`Error::Snapshot`], not
    /// retryable, naming what is missing or invalid.
    pub fn from_json(bytes: &[u8]) -> Result<Snapshot> {
        let page: Page = serde_json::from_slice(bytes).map_err(not_a_page)?;
        page.into_snapshot()
    }

    /// [`Snapshot::from_json`] of a parsed value.
    pub fn from_value(value: Value) -> Result<Snapshot> {
        let page: Page = serde_json::from_value(value).map_err(not_a_page)?;
        page.into_snapshot()
    }
}

fn not_a_page(e: serde_json::Error) -> Error {
    Error::Snapshot {
        reason: format!("not a page of the master's state: {e}"),
        retryable: false,
    }
}

/// Gunzips `raw`, refusing more than [`MAX_PAGE_BYTES`]. Errors: [`Error::Snapshot`], not
/// retryable (a page the master wrote is valid gzip of a bounded size).
pub fn gunzip(raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(MAX_PAGE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Snapshot {
            reason: format!("a page is not valid gzip: {e}"),
            retryable: false,
        })?;
    if out.len() as u64 > MAX_PAGE_BYTES {
        return Err(Error::Snapshot {
            reason: format!("a page decompresses to more than {MAX_PAGE_BYTES} bytes"),
            retryable: false,
        });
    }
    Ok(out)
}

/// Gzips `bytes` (fast: the link is the slow part, and the records are compressed again).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz =
        flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(bytes);
    gz.finish().unwrap_or_default()
}

/// The parts that carry `page` to `ship` in answer to `request`.
pub fn into_parts(ship: &ShipId, request: u64, page: &Snapshot) -> Vec<SnapshotPart> {
    let text = base64::engine::general_purpose::STANDARD
        .encode(gzip(&serde_json::to_vec(&page.to_json()).unwrap_or_default()));
    // Base64 is ASCII: every cut is at a character boundary.
    let chunks: Vec<&str> = text
        .as_bytes()
        .chunks(PART_CHARS)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    let parts = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, data)| SnapshotPart {
            ship: ship.clone(),
            request,
            part: u32::try_from(i).unwrap_or(u32::MAX),
            parts,
            data: data.to_owned(),
        })
        .collect()
}

/// The parts of one answer as they arrive, in any order, repeated or not.
#[derive(Debug)]
pub(crate) struct Assembly {
    request: u64,
    parts: Vec<Option<String>>,
    chars: u64,
}

impl Assembly {
    pub(crate) fn new(request: u64) -> Self {
        Self {
            request,
            parts: Vec::new(),
            chars: 0,
        }
    }

    /// The request whose answer this is.
    pub(crate) fn request(&self) -> u64 {
        self.request
    }

    /// Takes `part` if it answers this request; returns the page once every part is in.
    /// Errors: parts that disagree on their count, or more than a page may hold.
    pub(crate) fn add(&mut self, part: SnapshotPart) -> Result<Option<Snapshot>> {
        if part.request != self.request {
            return Ok(None);
        }
        let invalid = |reason: String| Error::Snapshot {
            reason,
            retryable: false,
        };
        if part.parts == 0 || part.part >= part.parts || u64::from(part.parts) > MAX_PARTS {
            return Err(invalid(format!("part {} of {} of a page", part.part, part.parts)));
        }
        if self.parts.is_empty() {
            self.parts = vec![None; part.parts as usize];
        } else if self.parts.len() != part.parts as usize {
            return Err(invalid(format!(
                "the parts of a page disagree on their count: {} and {}",
                self.parts.len(),
                part.parts
            )));
        }
        let slot = &mut self.parts[part.part as usize];
        if slot.is_none() {
            self.chars += part.data.len() as u64;
            if self.chars > MAX_PAGE_BYTES / 3 * 4 {
                return Err(invalid(format!("a page takes more than {MAX_PAGE_BYTES} bytes")));
            }
            *slot = Some(part.data);
        }
        if self.parts.iter().any(Option::is_none) {
            return Ok(None);
        }
        let text: String = self.parts.iter().flatten().map(String::as_str).collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| invalid(format!("a page is not valid base64: {e}")))?;
        Snapshot::from_json(&gunzip(&raw)?).map(Some)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    at: Csn,
    offset: i64,
    last_seq: Option<Seq>,
    applied: Vec<Applied>,
    touched: Vec<Doc>,
    resolved: Vec<Resolved>,
    total: Option<u64>,
    collected: Csn,
    documents: Vec<Doc>,
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resolved {
    conflict: u64,
    content_type: String,
    document_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Applied {
    seq: Seq,
    hlc: Option<Hlc>,
    content_type: Option<String>,
    document_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    content_type: String,
    document_id: String,
    fields: Fields,
    deleted: bool,
    version: Csn,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Snapshot {
        reason: format!("a page names an invalid {what}: {e}"),
        retryable: false,
    }
}

fn key(ct: &str, id: &str) -> Result<(ContentType, DocumentId)> {
    let ct = ContentType::new(ct).map_err(|e| invalid("content type", e))?;
    let id = id.parse().map_err(|e| invalid("document id", e))?;
    Ok((ct, id))
}

impl Doc {
    fn stored(self) -> Result<StoredDoc> {
        let (content_type, id) = key(&self.content_type, &self.document_id)?;
        offline_sync_model::validate_fields(&self.fields).map_err(|e| invalid("document", e))?;
        Ok(StoredDoc {
            content_type,
            id,
            fields: self.fields,
            deleted: self.deleted,
            version: self.version,
            updated_at_ms: 0,
            created_at_ms: 0,
        })
    }
}

impl Page {
    fn into_snapshot(self) -> Result<Snapshot> {
        if self.offset < 0 {
            return Err(invalid("offset", self.offset));
        }
        let documents = self
            .documents
            .into_iter()
            .map(Doc::stored)
            .collect::<Result<Vec<_>>>()?;
        let next = match self.next {
            Some(next) => {
                let (ct, id) = next.rsplit_once('/').ok_or_else(|| invalid("next page", &next))?;
                Some(key(ct, id)?)
            }
            None => None,
        };
        let applied = self
            .applied
            .into_iter()
            .map(|a| {
                let document = match (a.content_type, a.document_id) {
                    (Some(ct), Some(id)) => Some(key(&ct, &id)?),
                    _ => None,
                };
                Ok(ShipSeq {
                    seq: a.seq,
                    hlc: a.hlc,
                    document,
                })
            })
            .collect::<Result<_>>()?;
        let resolved = self
            .resolved
            .into_iter()
            .map(|r| key(&r.content_type, &r.document_id).map(|(ct, id)| (r.conflict, ct, id)))
            .collect::<Result<_>>()?;
        Ok(Snapshot {
            at: Published {
                csn: self.at,
                next_offset: self.offset,
            },
            documents,
            next,
            last_seq: self.last_seq,
            applied,
            touched: self.touched.into_iter().map(Doc::stored).collect::<Result<_>>()?,
            resolved,
            total: self.total,
            collected: self.collected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(docs: usize, size: usize) -> Snapshot {
        let ct = ContentType::new("api::a.a").unwrap();
        let documents: Vec<StoredDoc> = (0..docs)
            .map(|i| StoredDoc {
                content_type: ct.clone(),
                id: DocumentId::new_v7(),
                fields: json!({"n": i, "text": "x".repeat(size)})
                    .as_object()
                    .unwrap()
                    .clone(),
                deleted: i % 7 == 0,
                version: i as u64 + 1,
                updated_at_ms: 0,
                created_at_ms: 0,
            })
            .collect();
        Snapshot {
            at: Published {
                csn: 40,
                next_offset: 41,
            },
            next: documents.last().map(|d| (d.content_type.clone(), d.id)),
            last_seq: Some(3),
            applied: vec![ShipSeq {
                seq: 3,
                hlc: Some(Hlc { ms: 5, c: 1 }),
                document: Some((ct.clone(), documents[0].id)),
            }],
            touched: vec![documents[0].clone()],
            resolved: vec![(9, ct.clone(), documents[1].id)],
            total: Some(docs as u64),
            collected: 2,
            documents,
        }
    }

    #[test]
    fn a_page_round_trips_through_json_and_through_parts_in_any_order() {
        let p = page(20, 10);
        assert_eq!(
            Snapshot::from_json(&serde_json::to_vec(&p.to_json()).unwrap()).unwrap(),
            p
        );
        // Random text does not compress: the page needs several parts.
        let mut big = page(3, 10);
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: String = (0..1_500_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        big.documents[2].fields.insert("noise".into(), noise.into());
        let ship = ShipId::new("s1").unwrap();
        let mut parts = into_parts(&ship, 5, &big);
        assert!(parts.len() > 1, "{} parts", parts.len());
        parts.reverse();
        let mut a = Assembly::new(5);
        let mut other = parts[0].clone();
        other.request = 4;
        assert_eq!(a.add(other).unwrap(), None, "another request's part is ignored");
        let last = parts.pop().unwrap();
        for p in parts.iter().cloned().chain(parts.iter().cloned()) {
            assert_eq!(a.add(p).unwrap(), None);
        }
        assert_eq!(a.add(last).unwrap(), Some(big));
    }

    #[test]
    fn a_page_missing_a_member_or_naming_nonsense_is_refused() {
        let mut v = page(2, 1).to_json();
        v.as_object_mut().unwrap().remove("collected");
        let e = Snapshot::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            e.to_string().contains("collected") || format!("{e:?}").contains("collected"),
            "{e:?}"
        );
        let mut v = page(2, 1).to_json();
        v["documents"][0]["documentId"] = "not-an-id".into();
        assert!(Snapshot::from_json(&serde_json::to_vec(&v).unwrap()).is_err());
        let mut a = Assembly::new(1);
        let part = |part, parts| SnapshotPart {
            ship: ShipId::new("s1").unwrap(),
            request: 1,
            part,
            parts,
            data: "AAAA".into(),
        };
        assert!(a.add(part(0, 2)).unwrap().is_none());
        assert!(a.add(part(1, 3)).is_err(), "parts disagreeing on their count");
        assert!(Assembly::new(1).add(part(2, 2)).is_err());
        assert!(
            Assembly::new(1).add(part(0, u32::MAX)).is_err(),
            "a part count no page has is refused before anything is kept"
        );
    }

    #[test]
    fn a_gzip_bomb_is_refused_not_truncated() {
        let zeros = vec![0u8; (MAX_PAGE_BYTES + 10) as usize];
        let bomb = gzip(&zeros);
        let e = gunzip(&bomb).unwrap_err();
        assert!(format!("{e:?}").contains("more than"), "{e:?}");
        assert_eq!(gunzip(&gzip(b"{}")).unwrap(), b"{}");
    }
}
