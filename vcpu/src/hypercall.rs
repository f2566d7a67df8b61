//! The hypercall ABI, in one place: numbers, argument checks, and error codes. A guest passes the
//! number and up to six arguments in registers (see `vcpu/README.md` for each arch's registers);
//! the result comes back in one register, a negative value being an [`HypercallError`]. Decoding
//! checks everything that can be checked without the partition table, so handlers see only
//! well-formed requests and a malformed call costs the guest an error code, never the hypervisor.

/// The ABI version reported by [`Hypercall::Version`]: major in bits 31:16, minor in 15:0 (1.1
/// added the vCPU, timer, IPI, upcall and IRQ-routing calls).
pub const ABI_VERSION: u64 = 1 << 16 | 1;

/// The most bytes one console write may carry.
pub const CONSOLE_WRITE_MAX: u64 = 256;
/// The largest dirty bitmap one harvest may fill: 64 KiB covers 2 GiB of 4 KiB pages.
pub const BITMAP_MAX_BYTES: u64 = 64 * 1024;

/// Hypercall numbers.
pub mod nr {
    pub const VERSION: u64 = 0x00;
    pub const CONSOLE_WRITE: u64 = 0x01;
    pub const SELF_ID: u64 = 0x02;
    pub const POWER_OFF: u64 = 0x03;
    pub const VCPU_ID: u64 = 0x04;
    pub const VCPU_COUNT: u64 = 0x05;
    pub const VCPU_START: u64 = 0x06;
    pub const SEND_IPI: u64 = 0x07;
    pub const TIMER_SET: u64 = 0x08;
    pub const UPCALL_SET: u64 = 0x09;
    pub const UPCALL_RETURN: u64 = 0x0a;
    pub const IRQ_ROUTE: u64 = 0x0b;
    pub const PARTITION_COUNT: u64 = 0x10;
    pub const PARTITION_STATE: u64 = 0x11;
    pub const PARTITION_STOP: u64 = 0x12;
    pub const PARTITION_START: u64 = 0x13;
    pub const DIRTY_LOG_START: u64 = 0x20;
    pub const DIRTY_LOG_STOP: u64 = 0x21;
    pub const DIRTY_HARVEST: u64 = 0x22;
    pub const AGE_START: u64 = 0x30;
    pub const AGE_HARVEST: u64 = 0x31;
    pub const EXIT_COUNTERS: u64 = 0x40;
    pub const VCPU_INFO: u64 = 0x41;
}

/// Words per vCPU in a `VCPU_INFO` record: physical CPU, state, exits, timer, IPI and device
/// interrupts delivered, upcalls entered, IPIs sent.
pub const VCPU_INFO_WORDS: u64 = 8;
/// The longest timer period or delay `TIMER_SET` accepts: 1000 s.
pub const TIMER_MAX_NS: u64 = 1_000_000_000_000;
/// The shortest timer period or delay `TIMER_SET` accepts (0 still disarms): 10 µs. A shorter
/// one would only let a guest turn its timer into an interrupt storm on its own CPU (every
/// deadline an exit, re-armed at once); no test guest or OS needs a finer tick.
pub const TIMER_MIN_NS: u64 = 10_000;

/// A partition index as the board file orders partitions.
pub type PartitionId = u32;

/// A decoded, argument-checked hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypercall {
    /// Returns [`ABI_VERSION`].
    Version,
    /// Prints `len` bytes at guest-physical `gpa` on the partition's console.
    ConsoleWrite { gpa: u64, len: u64 },
    /// Returns the caller's partition id.
    SelfId,
    /// Stops the caller with exit `code`.
    PowerOff { code: u64 },
    /// Returns the calling vCPU's index inside its partition (0 = the boot vCPU).
    VcpuId,
    /// Returns how many vCPUs the caller's partition has.
    VcpuCount,
    /// Starts vCPU `index` of the caller's own partition at `entry`, with `arg` in its first
    /// argument register and its index in the second. Indices name vCPUs of the caller's
    /// partition only, so no other CPU can even be named.
    VcpuStart { index: u32, entry: u64, arg: u64 },
    /// Sends a virtual IPI to vCPU `index` of the caller's partition.
    SendIpi { index: u32 },
    /// Arms the calling vCPU's timer `ns` nanoseconds from now (0 disarms), again every `ns`
    /// when `periodic`.
    TimerSet { ns: u64, periodic: bool },
    /// Registers the calling vCPU's upcall handler (`crate::upcall`); entry 0 disables upcalls.
    UpcallSet { entry: u64, stack: u64 },
    /// Returns from the current upcall to the context it interrupted.
    UpcallReturn,
    /// Routes device line `line` (one the board file gives the caller) to vCPU `index`.
    IrqRoute { line: u32, index: u32 },
    /// Manager: how many partitions the board has.
    PartitionCount,
    /// Manager: a partition's state (see `PartitionState` in the platform).
    PartitionState { id: PartitionId },
    /// Manager: stops a partition.
    PartitionStop { id: PartitionId },
    /// Manager: (re)starts a stopped partition from its image.
    PartitionStart { id: PartitionId },
    /// Manager: starts dirty logging (write-protects or clears D bits on all of its memory).
    DirtyLogStart { id: PartitionId },
    /// Manager: stops dirty logging.
    DirtyLogStop { id: PartitionId },
    /// Manager: writes a bitmap of pages dirtied since the last harvest to the caller's
    /// `bitmap_gpa` (`bytes` long, one bit per 4 KiB page of the target's memory in board-file
    /// order) and returns how many bits were set.
    DirtyHarvest {
        id: PartitionId,
        bitmap_gpa: u64,
        bytes: u64,
    },
    /// Manager: clears the young state of every page of a partition.
    AgeStart { id: PartitionId },
    /// Manager: returns how many pages were touched since the last `AgeStart`.
    AgeHarvest { id: PartitionId },
    /// Manager: writes the partition's exit counters (u64 each, `ExitKind` order) to `gpa`.
    ExitCounters {
        id: PartitionId,
        gpa: u64,
        bytes: u64,
    },
    /// Manager: writes one [`VCPU_INFO_WORDS`]-word record per vCPU of partition `id` to `gpa`;
    /// returns how many records were written.
    VcpuInfo {
        id: PartitionId,
        gpa: u64,
        bytes: u64,
    },
}

/// Why a hypercall failed; returned to the guest as a negative number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallError {
    /// No such hypercall number (-1).
    Unknown,
    /// An argument is out of range or a reserved argument is not zero (-2).
    InvalidArgument,
    /// Only the manager partition may make this call (-3).
    Permission,
    /// No partition with that id (-4).
    NoPartition,
    /// The partition is not in a state that allows the request (-5).
    BadState,
    /// A guest address is outside the caller's memory (-6).
    BadAddress,
}

impl HypercallError {
    /// The value the guest sees.
    pub const fn code(self) -> i64 {
        match self {
            Self::Unknown => -1,
            Self::InvalidArgument => -2,
            Self::Permission => -3,
            Self::NoPartition => -4,
            Self::BadState => -5,
            Self::BadAddress => -6,
        }
    }

    /// The error for a raw return value, if it is one.
    pub const fn from_code(code: i64) -> Option<Self> {
        match code {
            -1 => Some(Self::Unknown),
            -2 => Some(Self::InvalidArgument),
            -3 => Some(Self::Permission),
            -4 => Some(Self::NoPartition),
            -5 => Some(Self::BadState),
            -6 => Some(Self::BadAddress),
            _ => None,
        }
    }
}

/// The register value for a hypercall's outcome.
pub fn encode_result(result: Result<u64, HypercallError>) -> u64 {
    match result {
        Ok(v) => v,
        Err(e) => e.code() as u64,
    }
}

fn id(arg: u64) -> Result<PartitionId, HypercallError> {
    PartitionId::try_from(arg).map_err(|_| HypercallError::InvalidArgument)
}

/// A vCPU index or device line: a u32 (whether the partition has it is checked later).
fn index(arg: u64) -> Result<u32, HypercallError> {
    u32::try_from(arg).map_err(|_| HypercallError::InvalidArgument)
}

/// A buffer of u64 words, 1..=4096 bytes.
fn words(gpa: u64, bytes: u64) -> Result<(), HypercallError> {
    if bytes == 0 || !bytes.is_multiple_of(8) || bytes > 4096 || gpa.checked_add(bytes).is_none() {
        return Err(HypercallError::InvalidArgument);
    }
    Ok(())
}

/// Arguments past those a call takes must be zero, so they can gain a meaning later.
fn unused(args: &[u64]) -> Result<(), HypercallError> {
    if args.iter().all(|&a| a == 0) {
        Ok(())
    } else {
        Err(HypercallError::InvalidArgument)
    }
}

impl Hypercall {
    /// Decodes and checks a call.
    pub fn decode(nr: u64, args: [u64; 6]) -> Result<Self, HypercallError> {
        let call = match nr {
            nr::VERSION => (Self::Version, 0),
            nr::CONSOLE_WRITE => {
                let (gpa, len) = (args[0], args[1]);
                if len > CONSOLE_WRITE_MAX || gpa.checked_add(len).is_none() {
                    return Err(HypercallError::InvalidArgument);
                }
                (Self::ConsoleWrite { gpa, len }, 2)
            }
            nr::SELF_ID => (Self::SelfId, 0),
            nr::POWER_OFF => (Self::PowerOff { code: args[0] }, 1),
            nr::VCPU_ID => (Self::VcpuId, 0),
            nr::VCPU_COUNT => (Self::VcpuCount, 0),
            nr::VCPU_START => (
                Self::VcpuStart {
                    index: index(args[0])?,
                    entry: args[1],
                    arg: args[2],
                },
                3,
            ),
            nr::SEND_IPI => (
                Self::SendIpi {
                    index: index(args[0])?,
                },
                1,
            ),
            nr::TIMER_SET => {
                let ns = args[0];
                if ns > TIMER_MAX_NS || (ns != 0 && ns < TIMER_MIN_NS) || args[1] > 1 {
                    return Err(HypercallError::InvalidArgument);
                }
                (
                    Self::TimerSet {
                        ns: args[0],
                        periodic: args[1] == 1,
                    },
                    2,
                )
            }
            nr::UPCALL_SET => {
                if args[0] != 0 && args[1] == 0 {
                    return Err(HypercallError::InvalidArgument);
                }
                (
                    Self::UpcallSet {
                        entry: args[0],
                        stack: args[1],
                    },
                    2,
                )
            }
            nr::UPCALL_RETURN => (Self::UpcallReturn, 0),
            nr::IRQ_ROUTE => (
                Self::IrqRoute {
                    line: index(args[0])?,
                    index: index(args[1])?,
                },
                2,
            ),
            nr::PARTITION_COUNT => (Self::PartitionCount, 0),
            nr::PARTITION_STATE => (Self::PartitionState { id: id(args[0])? }, 1),
            nr::PARTITION_STOP => (Self::PartitionStop { id: id(args[0])? }, 1),
            nr::PARTITION_START => (Self::PartitionStart { id: id(args[0])? }, 1),
            nr::DIRTY_LOG_START => (Self::DirtyLogStart { id: id(args[0])? }, 1),
            nr::DIRTY_LOG_STOP => (Self::DirtyLogStop { id: id(args[0])? }, 1),
            nr::DIRTY_HARVEST => {
                let (bitmap_gpa, bytes) = (args[1], args[2]);
                if bytes == 0 || bytes > BITMAP_MAX_BYTES || bitmap_gpa.checked_add(bytes).is_none()
                {
                    return Err(HypercallError::InvalidArgument);
                }
                (
                    Self::DirtyHarvest {
                        id: id(args[0])?,
                        bitmap_gpa,
                        bytes,
                    },
                    3,
                )
            }
            nr::AGE_START => (Self::AgeStart { id: id(args[0])? }, 1),
            nr::AGE_HARVEST => (Self::AgeHarvest { id: id(args[0])? }, 1),
            nr::EXIT_COUNTERS => {
                let (gpa, bytes) = (args[1], args[2]);
                words(gpa, bytes)?;
                (
                    Self::ExitCounters {
                        id: id(args[0])?,
                        gpa,
                        bytes,
                    },
                    3,
                )
            }
            nr::VCPU_INFO => {
                let (gpa, bytes) = (args[1], args[2]);
                words(gpa, bytes)?;
                (
                    Self::VcpuInfo {
                        id: id(args[0])?,
                        gpa,
                        bytes,
                    },
                    3,
                )
            }
            _ => return Err(HypercallError::Unknown),
        };
        unused(&args[call.1..])?;
        Ok(call.0)
    }

    /// True for the management calls only the manager partition may make.
    pub const fn needs_manager(&self) -> bool {
        !matches!(
            self,
            Self::Version
                | Self::ConsoleWrite { .. }
                | Self::SelfId
                | Self::PowerOff { .. }
                | Self::VcpuId
                | Self::VcpuCount
                | Self::VcpuStart { .. }
                | Self::SendIpi { .. }
                | Self::TimerSet { .. }
                | Self::UpcallSet { .. }
                | Self::UpcallReturn
                | Self::IrqRoute { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_decodes_with_well_formed_arguments() {
        let ok = [
            (nr::VERSION, [0; 6], Hypercall::Version),
            (
                nr::CONSOLE_WRITE,
                [0x1000, 5, 0, 0, 0, 0],
                Hypercall::ConsoleWrite {
                    gpa: 0x1000,
                    len: 5,
                },
            ),
            (nr::SELF_ID, [0; 6], Hypercall::SelfId),
            (
                nr::POWER_OFF,
                [7, 0, 0, 0, 0, 0],
                Hypercall::PowerOff { code: 7 },
            ),
            (nr::VCPU_ID, [0; 6], Hypercall::VcpuId),
            (nr::VCPU_COUNT, [0; 6], Hypercall::VcpuCount),
            (
                nr::VCPU_START,
                [1, 0x20_0000, 0x30_0000, 0, 0, 0],
                Hypercall::VcpuStart {
                    index: 1,
                    entry: 0x20_0000,
                    arg: 0x30_0000,
                },
            ),
            (
                nr::SEND_IPI,
                [1, 0, 0, 0, 0, 0],
                Hypercall::SendIpi { index: 1 },
            ),
            (
                nr::TIMER_SET,
                [1_000_000, 1, 0, 0, 0, 0],
                Hypercall::TimerSet {
                    ns: 1_000_000,
                    periodic: true,
                },
            ),
            (
                nr::UPCALL_SET,
                [0x20_1000, 0x30_0000, 0, 0, 0, 0],
                Hypercall::UpcallSet {
                    entry: 0x20_1000,
                    stack: 0x30_0000,
                },
            ),
            (nr::UPCALL_RETURN, [0; 6], Hypercall::UpcallReturn),
            (
                nr::IRQ_ROUTE,
                [3, 1, 0, 0, 0, 0],
                Hypercall::IrqRoute { line: 3, index: 1 },
            ),
            (
                nr::VCPU_INFO,
                [1, 0x9000, 128, 0, 0, 0],
                Hypercall::VcpuInfo {
                    id: 1,
                    gpa: 0x9000,
                    bytes: 128,
                },
            ),
            (nr::PARTITION_COUNT, [0; 6], Hypercall::PartitionCount),
            (
                nr::PARTITION_STATE,
                [2, 0, 0, 0, 0, 0],
                Hypercall::PartitionState { id: 2 },
            ),
            (
                nr::PARTITION_STOP,
                [1, 0, 0, 0, 0, 0],
                Hypercall::PartitionStop { id: 1 },
            ),
            (
                nr::PARTITION_START,
                [1, 0, 0, 0, 0, 0],
                Hypercall::PartitionStart { id: 1 },
            ),
            (
                nr::DIRTY_LOG_START,
                [1, 0, 0, 0, 0, 0],
                Hypercall::DirtyLogStart { id: 1 },
            ),
            (
                nr::DIRTY_LOG_STOP,
                [1, 0, 0, 0, 0, 0],
                Hypercall::DirtyLogStop { id: 1 },
            ),
            (
                nr::DIRTY_HARVEST,
                [1, 0x8000, 512, 0, 0, 0],
                Hypercall::DirtyHarvest {
                    id: 1,
                    bitmap_gpa: 0x8000,
                    bytes: 512,
                },
            ),
            (
                nr::AGE_START,
                [1, 0, 0, 0, 0, 0],
                Hypercall::AgeStart { id: 1 },
            ),
            (
                nr::AGE_HARVEST,
                [1, 0, 0, 0, 0, 0],
                Hypercall::AgeHarvest { id: 1 },
            ),
            (
                nr::EXIT_COUNTERS,
                [1, 0x9000, 64, 0, 0, 0],
                Hypercall::ExitCounters {
                    id: 1,
                    gpa: 0x9000,
                    bytes: 64,
                },
            ),
        ];
        for (n, args, want) in ok {
            assert_eq!(Hypercall::decode(n, args), Ok(want), "nr {n:#x}");
        }
    }

    #[test]
    fn malformed_calls_get_error_codes() {
        use HypercallError::*;
        let bad = [
            (0x7777, [0; 6], Unknown),
            (nr::VERSION, [1, 0, 0, 0, 0, 0], InvalidArgument),
            (
                nr::CONSOLE_WRITE,
                [0x1000, CONSOLE_WRITE_MAX + 1, 0, 0, 0, 0],
                InvalidArgument,
            ),
            (
                nr::CONSOLE_WRITE,
                [u64::MAX, 2, 0, 0, 0, 0],
                InvalidArgument,
            ),
            (
                nr::PARTITION_STOP,
                [1 << 32, 0, 0, 0, 0, 0],
                InvalidArgument,
            ),
            (nr::DIRTY_HARVEST, [1, 0x8000, 0, 0, 0, 0], InvalidArgument),
            (
                nr::DIRTY_HARVEST,
                [1, 0x8000, BITMAP_MAX_BYTES + 1, 0, 0, 0],
                InvalidArgument,
            ),
            (nr::EXIT_COUNTERS, [1, 0x9000, 12, 0, 0, 0], InvalidArgument),
            (nr::AGE_HARVEST, [1, 0, 0, 0, 0, 9], InvalidArgument),
            (nr::VCPU_START, [1 << 32, 0, 0, 0, 0, 0], InvalidArgument),
            (nr::SEND_IPI, [u64::MAX, 0, 0, 0, 0, 0], InvalidArgument),
            (
                nr::TIMER_SET,
                [TIMER_MAX_NS + 1, 0, 0, 0, 0, 0],
                InvalidArgument,
            ),
            (
                nr::TIMER_SET,
                [TIMER_MIN_NS, 2, 0, 0, 0, 0],
                InvalidArgument,
            ),
            (nr::TIMER_SET, [1, 1, 0, 0, 0, 0], InvalidArgument),
            (
                nr::TIMER_SET,
                [TIMER_MIN_NS - 1, 0, 0, 0, 0, 0],
                InvalidArgument,
            ),
            (nr::UPCALL_SET, [0x1000, 0, 0, 0, 0, 0], InvalidArgument),
            (nr::UPCALL_RETURN, [1, 0, 0, 0, 0, 0], InvalidArgument),
            (nr::VCPU_INFO, [1, 0x9000, 12, 0, 0, 0], InvalidArgument),
        ];
        for (n, args, want) in bad {
            assert_eq!(
                Hypercall::decode(n, args),
                Err(want),
                "nr {n:#x} args {args:?}"
            );
        }
    }

    #[test]
    fn error_codes_are_negative_and_round_trip() {
        use HypercallError::*;
        for e in [
            Unknown,
            InvalidArgument,
            Permission,
            NoPartition,
            BadState,
            BadAddress,
        ] {
            assert!(e.code() < 0);
            assert_eq!(HypercallError::from_code(e.code()), Some(e));
            assert_eq!(encode_result(Err(e)) as i64, e.code());
        }
        assert_eq!(encode_result(Ok(5)), 5);
    }

    #[test]
    fn only_management_calls_need_the_manager() {
        assert!(!Hypercall::Version.needs_manager());
        assert!(!Hypercall::PowerOff { code: 0 }.needs_manager());
        assert!(!Hypercall::SendIpi { index: 1 }.needs_manager());
        assert!(!Hypercall::IrqRoute { line: 3, index: 0 }.needs_manager());
        assert!(Hypercall::VcpuInfo {
            id: 0,
            gpa: 0,
            bytes: 8
        }
        .needs_manager());
        assert!(Hypercall::PartitionStop { id: 0 }.needs_manager());
        assert!(Hypercall::DirtyHarvest {
            id: 0,
            bitmap_gpa: 0,
            bytes: 8
        }
        .needs_manager());
    }
}
