//! Process attributes runc 1.2 honours beyond limits and credentials: the execution
//! domain (`linux.personality`), I/O priority (`process.ioPriority`) and CPU scheduling
//! policy (`process.scheduler`). The values are computed by pure functions; the syscalls
//! are one line each.

use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler,
};

/// Errors applying a process attribute; each names the spec field.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{field}: the kernel refused it: {source}")]
    Sys {
        field: &'static str,
        source: nix::Error,
    },
}

/// The personality(2) value for a spec personality. Flags are refused: runc accepts none.
pub fn personality_value(p: &LinuxPersonality) -> Result<libc::c_ulong, SchedError> {
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(SchedError::Invalid {
            field: "linux.personality.flags",
            reason: "no personality flags are supported".into(),
        });
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    })
}

/// Sets the execution domain of the calling process.
pub fn set_personality(p: &LinuxPersonality) -> Result<(), SchedError> {
    let v = personality_value(p)?;
    // SAFETY: personality(2) takes a plain integer.
    if unsafe { libc::personality(v) } < 0 {
        return Err(SchedError::Sys {
            field: "linux.personality",
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// The ioprio_set(2) value: class in bits 13.., priority 0-7 below.
pub fn ioprio_value(class: IOPriorityClass, priority: i64) -> Result<i32, SchedError> {
    if !(0..=7).contains(&priority) {
        return Err(SchedError::Invalid {
            field: "process.ioPriority.priority",
            reason: format!("{priority} is not in 0..=7"),
        });
    }
    let class = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    Ok((class << 13) | priority as i32)
}

/// Sets the I/O priority of the calling process.
pub fn set_ioprio(class: IOPriorityClass, priority: i64) -> Result<(), SchedError> {
    let v = ioprio_value(class, priority)?;
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_set with integer arguments.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, v) } < 0 {
        return Err(SchedError::Sys {
            field: "process.ioPriority",
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// `struct sched_attr` of sched_setattr(2).
#[repr(C)]
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// The sched_attr for a spec scheduler. Pure.
pub fn sched_attr(s: &Scheduler) -> Result<SchedAttr, SchedError> {
    let invalid = |field, reason: String| SchedError::Invalid { field, reason };
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => {
            return Err(invalid(
                "process.scheduler.policy",
                "SCHED_ISO is not in Linux".into(),
            ));
        }
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(invalid(
            "process.scheduler.nice",
            format!("{nice} is not in -20..=19"),
        ));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(policy, 1 | 2);
    if realtime && !(1..=99).contains(&priority) || !realtime && priority != 0 {
        return Err(invalid(
            "process.scheduler.priority",
            format!("{priority} does not fit policy {:?}", s.policy()),
        ));
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}

/// Sets the scheduling policy of the calling process.
pub fn set_scheduler(s: &Scheduler) -> Result<(), SchedError> {
    let attr = sched_attr(s)?;
    // SAFETY: sched_setattr reads a sched_attr we own, of the size it states.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } < 0 {
        return Err(SchedError::Sys {
            field: "process.scheduler",
            source: nix::Error::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(j: serde_json::Value) -> Scheduler {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn scheduler_values() {
        let a = sched_attr(&sched(serde_json::json!({"policy": "SCHED_RR", "priority": 10, "flags": ["SCHED_RESET_ON_FORK"]}))).unwrap();
        assert_eq!((a.policy, a.priority, a.flags, a.size), (2, 10, 1, 48));
        let a = sched_attr(&sched(
            serde_json::json!({"policy": "SCHED_BATCH", "nice": 5}),
        ))
        .unwrap();
        assert_eq!((a.policy, a.nice), (3, 5));
        for bad in [
            serde_json::json!({"policy": "SCHED_FIFO"}),
            serde_json::json!({"policy": "SCHED_OTHER", "priority": 3}),
            serde_json::json!({"policy": "SCHED_OTHER", "nice": 40}),
            serde_json::json!({"policy": "SCHED_ISO"}),
        ] {
            assert!(sched_attr(&sched(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn ioprio_and_personality_values() {
        assert_eq!(
            ioprio_value(IOPriorityClass::IoprioClassBe, 4).unwrap(),
            (2 << 13) | 4
        );
        assert_eq!(
            ioprio_value(IOPriorityClass::IoprioClassIdle, 0).unwrap(),
            3 << 13
        );
        assert!(ioprio_value(IOPriorityClass::IoprioClassRt, 8).is_err());
        let p: LinuxPersonality =
            serde_json::from_value(serde_json::json!({"domain": "LINUX32"})).unwrap();
        assert_eq!(personality_value(&p).unwrap(), 8);
        let p: LinuxPersonality =
            serde_json::from_value(serde_json::json!({"domain": "LINUX", "flags": ["X"]})).unwrap();
        assert!(personality_value(&p).is_err());
    }
}
