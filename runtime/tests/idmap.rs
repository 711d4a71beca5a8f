//! Root integration tests of ID-mapped bind mounts (runtime-spec `config.md` "Mounts":
//! uidMappings, gidMappings, idmap, ridmap) through `berth`'s command line.

mod common;

use std::os::unix::fs::chown;
use std::path::Path;

use common::*;

/// A host directory with files owned by uid/gid 0, 1 and 500.
fn owned_files(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, id) in [("zero", 0), ("one", 1), ("far", 500)] {
        let p = dir.join(name);
        std::fs::write(&p, name).unwrap();
        chown(&p, Some(id), Some(id)).unwrap();
    }
}

fn maps(c: u32, h: u32, s: u32) -> serde_json::Value {
    serde_json::json!([{"containerID": c, "hostID": h, "size": s}])
}

/// Mount points below `dir` left in this process's mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&d))
        .map(str::to_string)
        .collect()
}

const STAT: &str = "cd /data && for f in zero one far; do echo $f $(stat -c '%u:%g' $f); done";

#[test]
fn features_advertise_idmap() {
    let o = std::process::Command::new(BERTH)
        .arg("features")
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["linux"]["mountExtensions"]["idmap"]["enabled"],
        serde_json::json!(true)
    );
    let opts = v["mountOptions"].as_array().unwrap();
    for w in ["idmap", "ridmap"] {
        assert!(
            opts.contains(&serde_json::json!(w)),
            "{w} not in mountOptions"
        );
    }
}

#[test]
fn bind_mount_with_uid_mappings_shows_mapped_owners() {
    let mut cfg = base_config(&["sh", "-c", STAT]);
    let f = Fixture::new("idmap", cfg.clone());
    let data = f.dir.path().join("data");
    owned_files(&data);
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": data, "options": ["bind", "idmap"],
            "uidMappings": maps(0, 1000, 10), "gidMappings": maps(0, 2000, 10)
        }));
    f.write_config(&cfg);
    let o = f.run_fg();
    assert!(o.status.success(), "run: {}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "zero 1000:2000\none 1001:2001\nfar 65534:65534\n",
        "stderr: {}",
        stderr(&o)
    );
    // On the host, nothing changed.
    let meta = std::fs::metadata(data.join("one")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1);
    assert!(mounts_under(f.dir.path()).is_empty());
}

#[test]
fn ridmap_maps_submounts_and_idmap_does_not() {
    for (opt, sub_owner) in [("ridmap", "1000:2000"), ("idmap", "0:0")] {
        let mut cfg = base_config(&["stat", "-c", "%u:%g", "/data/sub/zero"]);
        let f = Fixture::new("ridmap", cfg.clone());
        let data = f.dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        // A submount of the source: a tmpfs holding a root-owned file.
        let sub = data.join("sub");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&sub)
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs");
        struct Umount(std::path::PathBuf);
        impl Drop for Umount {
            fn drop(&mut self) {
                let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _umount = Umount(sub.clone());
        std::fs::write(sub.join("zero"), "").unwrap();
        cfg["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": "/data", "type": "bind", "source": data, "options": ["rbind", opt],
                "uidMappings": maps(0, 1000, 10), "gidMappings": maps(0, 2000, 10)
            }));
        f.write_config(&cfg);
        let o = f.run_fg();
        assert!(o.status.success(), "{opt}: run: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("{sub_owner}\n"), "{opt}");
    }
}

#[test]
fn idmap_without_mappings_uses_the_container_user_namespace() {
    let mut cfg = base_config(&["sh", "-c", STAT]);
    let ns = cfg["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(serde_json::json!({"type": "user"}));
    cfg["linux"]["uidMappings"] = maps(0, 100000, 65536);
    cfg["linux"]["gidMappings"] = maps(0, 100000, 65536);
    let f = Fixture::new("idmap-userns", cfg.clone());
    let data = f.dir.path().join("data");
    owned_files(&data);
    // The container's root cannot make mount points in the host-owned rootfs.
    for d in ["plain", "data"] {
        std::fs::create_dir(f.bundle().join("rootfs").join(d)).unwrap();
    }
    // Without idmap the container's root sees the host's root files as nobody.
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/plain", "type": "bind", "source": data, "options": ["bind"]
        }));
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": data, "options": ["bind", "idmap"]
        }));
    cfg["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        format!("{STAT}; stat -c 'plain %u:%g' /plain/zero")
    ]);
    f.write_config(&cfg);
    let o = f.run_fg();
    assert!(o.status.success(), "run: {}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "zero 0:0\none 1:1\nfar 500:500\nplain 65534:65534\n",
        "stderr: {}",
        stderr(&o)
    );
}

#[test]
fn refused_mappings_are_a_clear_error_leaving_nothing() {
    let f = Fixture::new("idmap-bad", base_config(&["true"]));
    let data = f.dir.path().join("data");
    owned_files(&data);
    let cases = [
        // Overlapping ranges: the kernel refuses the uid_map.
        (
            serde_json::json!({"destination": "/data", "type": "bind", "source": data,
                "options": ["bind", "idmap"],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10},
                                {"containerID": 5, "hostID": 3000, "size": 10}],
                "gidMappings": maps(0, 2000, 10)}),
            "refused by the kernel",
        ),
        // procfs cannot be ID-mapped.
        (
            serde_json::json!({"destination": "/data", "type": "bind", "source": "/proc",
                "options": ["rbind", "idmap"],
                "uidMappings": maps(0, 1000, 10), "gidMappings": maps(0, 2000, 10)}),
            "MOUNT_ATTR_IDMAP",
        ),
        // Mappings without the option.
        (
            serde_json::json!({"destination": "/data", "type": "bind", "source": data,
                "options": ["bind"],
                "uidMappings": maps(0, 1000, 10), "gidMappings": maps(0, 2000, 10)}),
            "idmap or ridmap",
        ),
        // idmap with neither mappings nor a user namespace.
        (
            serde_json::json!({"destination": "/data", "type": "bind", "source": data,
                "options": ["bind", "idmap"]}),
            "user namespace",
        ),
    ];
    for (mount, want) in cases {
        let mut cfg = base_config(&["true"]);
        cfg["mounts"].as_array_mut().unwrap().push(mount.clone());
        f.write_config(&cfg);
        let o = f.create(&[]);
        assert_one_line_error(&o, want);
        assert!(f.state().is_none(), "{mount}: state left");
        assert!(!f.root().join(&f.id).exists(), "{mount}: state dir left");
        assert!(f.cgroup_dirs().is_empty(), "{mount}: cgroup left");
        assert!(
            mounts_under(f.dir.path()).is_empty(),
            "{mount}: mount left: {:?}",
            mounts_under(f.dir.path())
        );
    }
}
