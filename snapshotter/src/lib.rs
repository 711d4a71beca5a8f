//! berth-snapshotter: content-addressed blobs, overlay snapshots, safe layer unpack,
//! and the registry pull path berthd uses.
