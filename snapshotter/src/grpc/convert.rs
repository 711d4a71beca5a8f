//! Pure translations between containerd's snapshots messages and the library's
//! types, and between [`SnapshotError`] and gRPC statuses (containerd's errdefs map
//! NotFound, AlreadyExists, FailedPrecondition and InvalidArgument to its own errors).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use tonic::{Code, Status};

use super::proto;
use crate::snapshots::{Info, Kind, Mount, SnapshotError, Usage};

/// The most bytes a label's key and value may hold together (containerd's limit).
pub const MAX_LABEL_BYTES: usize = 4096;

/// A request or response that does not fit the library's model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    /// A label with an empty key, or key and value longer than [`MAX_LABEL_BYTES`].
    #[error("label {key:?}: {reason}")]
    BadLabel {
        /// The label's key (shortened).
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An update mask path other than `labels` and `labels.KEY`.
    #[error("cannot update field {0:?}: only \"labels\" and \"labels.KEY\" are mutable")]
    BadUpdatePath(String),
    /// A `Kind` value that is not view, active or committed.
    #[error("snapshot {name:?}: unknown kind {kind}")]
    BadKind {
        /// The snapshot.
        name: String,
        /// The wire value.
        kind: i32,
    },
    /// A message lacks a field it needs.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A timestamp that is out of range.
    #[error("snapshot {0:?}: timestamp out of range")]
    BadTimestamp(String),
    /// A usage figure that does not fit the wire's signed 64 bits.
    #[error("usage {0} does not fit in an int64")]
    UsageOverflow(u64),
}

impl From<ConvertError> for Status {
    fn from(e: ConvertError) -> Status {
        match e {
            ConvertError::UsageOverflow(_) => Status::internal(e.to_string()),
            _ => Status::invalid_argument(e.to_string()),
        }
    }
}

/// The library's mount as containerd's `containerd.types.Mount` (no target: a rootfs).
pub fn mount_to_proto(m: &Mount) -> proto::Mount {
    proto::Mount {
        r#type: m.kind.clone(),
        source: m.source.clone(),
        target: String::new(),
        options: m.options.clone(),
    }
}

/// containerd's mount as the library's (the target, which a snapshotter never sets,
/// is dropped).
pub fn mount_from_proto(m: proto::Mount) -> Mount {
    Mount {
        kind: m.r#type,
        source: m.source,
        options: m.options,
    }
}

/// The library's kind as the wire enum.
pub fn kind_to_proto(k: Kind) -> proto::Kind {
    match k {
        Kind::View => proto::Kind::View,
        Kind::Active => proto::Kind::Active,
        Kind::Committed => proto::Kind::Committed,
    }
}

/// A wire kind as the library's; `None` for UNKNOWN and values no version defines.
pub fn kind_from_proto(k: i32) -> Option<Kind> {
    match proto::Kind::try_from(k).ok()? {
        proto::Kind::View => Some(Kind::View),
        proto::Kind::Active => Some(Kind::Active),
        proto::Kind::Committed => Some(Kind::Committed),
        proto::Kind::Unknown => None,
    }
}

/// An empty parent on the wire means "no parent".
pub fn parent_from_proto(p: &str) -> Option<&str> {
    (!p.is_empty()).then_some(p)
}

/// Check labels from a request (non-empty keys, key and value within
/// [`MAX_LABEL_BYTES`]) and order them.
pub fn labels_from_proto(
    labels: HashMap<String, String>,
) -> Result<BTreeMap<String, String>, ConvertError> {
    for (k, v) in &labels {
        let short = || k.chars().take(100).collect::<String>();
        if k.is_empty() {
            return Err(ConvertError::BadLabel {
                key: String::new(),
                reason: "empty key",
            });
        }
        if k.len() + v.len() > MAX_LABEL_BYTES {
            return Err(ConvertError::BadLabel {
                key: short(),
                reason: "key and value longer than 4096 bytes",
            });
        }
    }
    Ok(labels.into_iter().collect())
}

/// The library's snapshot information as the wire's.
pub fn info_to_proto(i: &Info) -> proto::Info {
    proto::Info {
        name: i.name.clone(),
        parent: i.parent.clone().unwrap_or_default(),
        kind: kind_to_proto(i.kind) as i32,
        created_at: Some(i.created.into()),
        updated_at: Some(i.updated.into()),
        labels: i
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Snapshot information from the wire (a client's side of `Stat`, `Update`, `List`).
/// A missing timestamp is the epoch, as Go's zero time would be sent as unset.
pub fn info_from_proto(i: proto::Info) -> Result<Info, ConvertError> {
    let kind = kind_from_proto(i.kind).ok_or_else(|| ConvertError::BadKind {
        name: i.name.clone(),
        kind: i.kind,
    })?;
    let time = |t: Option<prost_types::Timestamp>| match t {
        None => Ok(UNIX_EPOCH),
        Some(t) => SystemTime::try_from(t).map_err(|_| ConvertError::BadTimestamp(i.name.clone())),
    };
    Ok(Info {
        kind,
        parent: parent_from_proto(&i.parent).map(str::to_owned),
        created: time(i.created_at)?,
        updated: time(i.updated_at)?,
        labels: i.labels.into_iter().collect(),
        name: i.name,
    })
}

/// Usage as the wire's signed figures.
pub fn usage_to_proto(u: Usage) -> Result<proto::UsageResponse, ConvertError> {
    let conv = |v: u64| i64::try_from(v).map_err(|_| ConvertError::UsageOverflow(v));
    Ok(proto::UsageResponse {
        size: conv(u.size)?,
        inodes: conv(u.inodes)?,
    })
}

/// Usage from the wire (negative figures are clamped to zero).
pub fn usage_from_proto(u: proto::UsageResponse) -> Usage {
    Usage {
        size: u64::try_from(u.size).unwrap_or(0),
        inodes: u64::try_from(u.inodes).unwrap_or(0),
    }
}

/// The labels after an `Update`: `current` changed by `new` as the mask says.
///
/// As containerd: no paths (or `labels`) replaces every label with `new`;
/// `labels.KEY` sets KEY to `new[KEY]`, or deletes it when `new` lacks it. Any
/// other path names an immutable or unknown field and is refused.
pub fn apply_update(
    current: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    paths: &[String],
) -> Result<BTreeMap<String, String>, ConvertError> {
    if paths.is_empty() {
        return Ok(new.clone());
    }
    let mut out = current.clone();
    let mut replaced = false;
    for p in paths {
        if p == "labels" {
            replaced = true;
        } else if let Some(key) = p.strip_prefix("labels.").filter(|k| !k.is_empty()) {
            match new.get(key) {
                Some(v) => out.insert(key.to_owned(), v.clone()),
                None => out.remove(key),
            };
        } else {
            return Err(ConvertError::BadUpdatePath(p.chars().take(100).collect()));
        }
    }
    if replaced {
        // "labels" wins over single keys, as in containerd: all labels are the new set.
        return Ok(new.clone());
    }
    Ok(out)
}

/// The gRPC status containerd expects for a library error.
pub fn error_to_status(e: &SnapshotError) -> Status {
    let msg = e.to_string();
    match e {
        SnapshotError::NotFound(_) => Status::not_found(msg),
        SnapshotError::AlreadyExists(_) => Status::already_exists(msg),
        SnapshotError::FailedPrecondition { .. } => Status::failed_precondition(msg),
        SnapshotError::InvalidKey(_) => Status::invalid_argument(msg),
        SnapshotError::Meta(_) | SnapshotError::Io { .. } => Status::internal(msg),
    }
}

/// A status from a remote snapshotter as the library's error about `object` (a
/// client's side; the message is kept where the variant can carry it).
pub fn status_to_error(s: &Status, object: &str) -> SnapshotError {
    let object = object.to_owned();
    match s.code() {
        Code::NotFound => SnapshotError::NotFound(object),
        Code::AlreadyExists => SnapshotError::AlreadyExists(object),
        Code::FailedPrecondition => SnapshotError::FailedPrecondition {
            key: object,
            reason: "refused by the remote snapshotter (failed precondition)",
        },
        Code::InvalidArgument => SnapshotError::InvalidKey(object),
        code => SnapshotError::Io {
            op: "remote snapshotter call",
            path: PathBuf::from(object),
            source: std::io::Error::other(format!("{code:?}: {}", s.message())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn apply_update_table() {
        let cur = map(&[("a", "1"), ("b", "2")]);
        let new = map(&[("b", "20"), ("c", "30")]);
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        type Want = Result<BTreeMap<String, String>, ConvertError>;
        let cases: Vec<(Vec<String>, Want)> = vec![
            (p(&[]), Ok(new.clone())),
            (p(&["labels"]), Ok(new.clone())),
            (p(&["labels.b"]), Ok(map(&[("a", "1"), ("b", "20")]))),
            (
                p(&["labels.c", "labels.a"]),
                Ok(map(&[("b", "2"), ("c", "30")])),
            ),
            (p(&["labels.zz"]), Ok(cur.clone())),
            (p(&["labels.b", "labels"]), Ok(new.clone())),
            (p(&["labels.containerd.io/gc.root"]), Ok(cur.clone())),
            (
                p(&["name"]),
                Err(ConvertError::BadUpdatePath("name".into())),
            ),
            (
                p(&["parent"]),
                Err(ConvertError::BadUpdatePath("parent".into())),
            ),
            (
                p(&["labels."]),
                Err(ConvertError::BadUpdatePath("labels.".into())),
            ),
            (
                p(&["labelsx"]),
                Err(ConvertError::BadUpdatePath("labelsx".into())),
            ),
        ];
        for (paths, want) in cases {
            assert_eq!(apply_update(&cur, &new, &paths), want, "{paths:?}");
        }
    }

    #[test]
    fn dotted_label_keys_update_one_label() {
        let cur = map(&[("containerd.io/snapshot.ref", "x")]);
        let new = map(&[("containerd.io/gc.root", "t")]);
        let got = apply_update(&cur, &new, &["labels.containerd.io/gc.root".into()]).unwrap();
        assert_eq!(
            got,
            map(&[
                ("containerd.io/gc.root", "t"),
                ("containerd.io/snapshot.ref", "x")
            ])
        );
    }

    #[test]
    fn labels_are_checked() {
        let ok = HashMap::from([("containerd.io/snapshot.ref".to_string(), "sha256:ab".into())]);
        assert_eq!(
            labels_from_proto(ok).unwrap(),
            map(&[("containerd.io/snapshot.ref", "sha256:ab")])
        );
        let empty = HashMap::from([(String::new(), "v".to_string())]);
        assert!(matches!(
            labels_from_proto(empty),
            Err(ConvertError::BadLabel { .. })
        ));
        let long = HashMap::from([("k".to_string(), "v".repeat(MAX_LABEL_BYTES))]);
        assert!(matches!(
            labels_from_proto(long),
            Err(ConvertError::BadLabel { .. })
        ));
        let edge = HashMap::from([("k".to_string(), "v".repeat(MAX_LABEL_BYTES - 1))]);
        assert!(labels_from_proto(edge).is_ok());
    }

    #[test]
    fn kinds_round_trip_and_unknown_is_refused() {
        for k in [Kind::View, Kind::Active, Kind::Committed] {
            assert_eq!(kind_from_proto(kind_to_proto(k) as i32), Some(k));
        }
        // Wire values fixed by containerd's API.
        assert_eq!(kind_to_proto(Kind::View) as i32, 1);
        assert_eq!(kind_to_proto(Kind::Active) as i32, 2);
        assert_eq!(kind_to_proto(Kind::Committed) as i32, 3);
        assert_eq!(kind_from_proto(0), None);
        assert_eq!(kind_from_proto(7), None);
        assert_eq!(kind_from_proto(-1), None);
    }

    #[test]
    fn info_round_trip() {
        let t0 = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let info = Info {
            kind: Kind::Committed,
            name: "ns/1/sha256:aa".into(),
            parent: Some("ns/0/sha256:bb".into()),
            labels: map(&[("containerd.io/snapshot.ref", "sha256:aa")]),
            created: t0,
            updated: t0 + Duration::from_secs(5),
        };
        let wire = info_to_proto(&info);
        assert_eq!(wire.kind, 3);
        assert_eq!(wire.parent, "ns/0/sha256:bb");
        assert_eq!(info_from_proto(wire).unwrap(), info);
        let root = Info {
            parent: None,
            ..info
        };
        let wire = info_to_proto(&root);
        assert_eq!(wire.parent, "");
        assert_eq!(info_from_proto(wire).unwrap(), root);
    }

    #[test]
    fn info_from_bad_wire() {
        let mut w = proto::Info {
            name: "x".into(),
            kind: 0,
            ..Default::default()
        };
        assert!(matches!(
            info_from_proto(w.clone()),
            Err(ConvertError::BadKind { kind: 0, .. })
        ));
        w.kind = 2;
        assert_eq!(info_from_proto(w.clone()).unwrap().created, UNIX_EPOCH);
        w.created_at = Some(prost_types::Timestamp {
            seconds: i64::MIN,
            nanos: 0,
        });
        assert_eq!(
            info_from_proto(w),
            Err(ConvertError::BadTimestamp("x".into()))
        );
    }

    #[test]
    fn mounts_round_trip() {
        let m = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                "workdir=/w".into(),
                "upperdir=/u".into(),
                "lowerdir=/l".into(),
            ],
        };
        let wire = mount_to_proto(&m);
        assert_eq!(wire.r#type, "overlay");
        assert_eq!(wire.target, "");
        assert_eq!(mount_from_proto(wire), m);
    }

    #[test]
    fn usage_conversions() {
        let u = Usage {
            size: 4096,
            inodes: 3,
        };
        let w = usage_to_proto(u).unwrap();
        assert_eq!((w.size, w.inodes), (4096, 3));
        assert_eq!(usage_from_proto(w), u);
        assert_eq!(
            usage_to_proto(Usage {
                size: u64::MAX,
                inodes: 0
            }),
            Err(ConvertError::UsageOverflow(u64::MAX))
        );
        assert_eq!(
            usage_from_proto(proto::UsageResponse {
                size: -1,
                inodes: 2
            }),
            Usage { size: 0, inodes: 2 }
        );
    }

    #[test]
    fn errors_map_to_containerd_codes_and_back() {
        let cases = [
            (SnapshotError::NotFound("k".into()), Code::NotFound),
            (
                SnapshotError::AlreadyExists("k".into()),
                Code::AlreadyExists,
            ),
            (
                SnapshotError::FailedPrecondition {
                    key: "k".into(),
                    reason: "snapshot has children",
                },
                Code::FailedPrecondition,
            ),
            (SnapshotError::InvalidKey("".into()), Code::InvalidArgument),
            (
                SnapshotError::Io {
                    op: "stat",
                    path: "/x".into(),
                    source: std::io::Error::other("boom"),
                },
                Code::Internal,
            ),
        ];
        for (err, code) in cases {
            let st = error_to_status(&err);
            assert_eq!(st.code(), code, "{err}");
            assert_eq!(st.message(), err.to_string());
            let back = status_to_error(&st, "k");
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&err),
                "{err} -> {back}"
            );
        }
        assert!(matches!(
            status_to_error(&Status::unavailable("down"), "k"),
            SnapshotError::Io { .. }
        ));
    }

    #[test]
    fn convert_errors_are_invalid_argument() {
        let st: Status = ConvertError::BadUpdatePath("name".into()).into();
        assert_eq!(st.code(), Code::InvalidArgument);
        assert!(st.message().contains("name"), "{}", st.message());
    }
}
