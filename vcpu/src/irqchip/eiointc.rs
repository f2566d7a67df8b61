//! The Loongson extended I/O interrupt controller (EIOINTC) as one partition sees it: a virtual
//! controller of its own, reached through the IOCSR space, that takes the vectors its PCH-PIC view
//! sends (a device line becomes vector `HTMSI_VEC[line]`) and raises a CPU hardware line on the
//! vCPU the guest routed each vector to. Nothing of it touches the physical EIOINTC, which the
//! hypervisor keeps; the partition's cores are its vCPUs (core k of node 0 is vCPU k), so a route
//! cannot name a CPU outside it.
//!
//! Registers (IOCSR addresses; bit or byte n belongs to vector n, 256 vectors):
//!
//! | address | register | what the view does |
//! |---|---|---|
//! | 0x0420 | MISC_FUNC (64 bits) | bit 48 (EXT_IOI_EN) holds what was written; other bits read 0, writes to them are dropped |
//! | 0x14a0 | NODEMAP, 32 bytes | holds what was written (one node: nothing to map) |
//! | 0x14c0 | IPMAP, one byte per 32 vectors | holds what was written; the lowest of bits 3:0 picks HWI0-3 for the group |
//! | 0x1600 | ENABLE, one bit per vector | holds what was written; a vector raised while disabled is dropped |
//! | 0x1680 | BOUNCE, one bit per vector | holds what was written (one target per vector: nothing to bounce) |
//! | 0x1800 | ISR, one bit per vector | the reading vCPU's own pending vectors; writing 1s clears them |
//! | 0x1c00 | ROUTE, one byte per vector | bits 3:0 a core bitmap, bits 7:4 the node: holds what was written if it names node 0 and only the partition's vCPUs |
//! | 0x1158 | ANY_SEND | a write to another core's register of this block: applied to the block (only ISR is per core) |
//!
//! Accesses of 1, 2, 4 or 8 bytes, naturally aligned; anything else is not this block's.

use alloc::vec;
use alloc::vec::Vec;

/// MISC_FUNC's address.
pub const MISC_FUNC: u64 = 0x420;
/// MISC_FUNC's "extended I/O interrupts on" bit.
pub const EXT_IOI_EN: u64 = 1 << 48;
/// The address of ANY_SEND, through which a core writes another core's IOCSR registers.
pub const ANY_SEND: u64 = 0x1158;
/// NODEMAP's address.
pub const NODEMAP: u64 = 0x14a0;
/// IPMAP's address.
pub const IPMAP: u64 = 0x14c0;
/// ENABLE's address.
pub const ENABLE: u64 = 0x1600;
/// BOUNCE's address.
pub const BOUNCE: u64 = 0x1680;
/// ISR's address.
pub const ISR: u64 = 0x1800;
/// The first ROUTE byte (vector 0).
pub const ROUTE: u64 = 0x1c00;
/// Vectors the controller has.
pub const VECTORS: usize = 256;

/// Why a write was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// A ROUTE byte naming a node other than 0, or a core the partition does not have (vector,
    /// byte).
    Route { vector: u8, byte: u8 },
    /// MISC_FUNC bits other than EXT_IOI_EN.
    MiscFunc,
}

/// One partition's EIOINTC.
#[derive(Clone, Debug)]
pub struct Eiointc {
    vcpus: u32,
    ext_ioi: bool,
    nodemap: [u8; 32],
    ipmap: [u8; 8],
    enable: [u8; 32],
    bounce: [u8; 32],
    route: [u8; VECTORS],
    /// Pending vectors per vCPU.
    isr: Vec<[u8; 32]>,
}

/// A byte register of the block: where its bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    NodeMap,
    IpMap,
    Enable,
    Bounce,
    Isr,
    Route,
}

impl Reg {
    /// The register holding IOCSR byte `addr`, and the byte's index in it.
    fn of(addr: u64) -> Option<(Self, usize)> {
        let at = |r, base: u64| Some((r, (addr - base) as usize));
        match addr {
            0x14a0..=0x14bf => at(Self::NodeMap, NODEMAP),
            0x14c0..=0x14c7 => at(Self::IpMap, IPMAP),
            0x1600..=0x161f => at(Self::Enable, ENABLE),
            0x1680..=0x169f => at(Self::Bounce, BOUNCE),
            0x1800..=0x181f => at(Self::Isr, ISR),
            0x1c00..=0x1cff => at(Self::Route, ROUTE),
            _ => None,
        }
    }
}

/// Whether `size` bytes at `addr` are a naturally aligned access of 1, 2, 4 or 8 bytes.
fn aligned(addr: u64, size: u32) -> bool {
    matches!(size, 1 | 2 | 4 | 8) && addr.is_multiple_of(u64::from(size))
}

impl Eiointc {
    /// A reset controller for a partition of `vcpus` vCPUs: everything 0, off.
    pub fn new(vcpus: u32) -> Self {
        Self {
            vcpus: vcpus.max(1),
            ext_ioi: false,
            nodemap: [0; 32],
            ipmap: [0; 8],
            enable: [0; 32],
            bounce: [0; 32],
            route: [0; VECTORS],
            isr: vec![[0; 32]; vcpus.max(1) as usize],
        }
    }

    fn byte(&self, vcpu: u32, reg: Reg, i: usize) -> u8 {
        match reg {
            Reg::NodeMap => self.nodemap[i],
            Reg::IpMap => self.ipmap[i],
            Reg::Enable => self.enable[i],
            Reg::Bounce => self.bounce[i],
            Reg::Isr => self.isr[vcpu as usize][i],
            Reg::Route => self.route[i],
        }
    }

    /// vCPU `vcpu`'s read of `size` bytes at IOCSR `addr`; `None` if it is not the block's, or
    /// misaligned, or crosses a register.
    pub fn read(&self, vcpu: u32, addr: u64, size: u32) -> Option<u64> {
        if !aligned(addr, size) || vcpu >= self.vcpus {
            return None;
        }
        if addr & !7 == MISC_FUNC {
            let word = if self.ext_ioi { EXT_IOI_EN } else { 0 };
            let bits = word >> (8 * (addr & 7));
            return Some(if size == 8 {
                bits
            } else {
                bits & ((1 << (8 * size)) - 1)
            });
        }
        let (reg, first) = Reg::of(addr)?;
        // The last byte must be in the same register.
        if Reg::of(addr + u64::from(size) - 1).map(|(r, _)| r) != Some(reg) {
            return None;
        }
        Some((0..size as usize).fold(0, |v, k| {
            v | u64::from(self.byte(vcpu, reg, first + k)) << (8 * k)
        }))
    }

    /// vCPU `vcpu`'s write of `size` bytes of `value` at IOCSR `addr`: `None` if it is not the
    /// block's (or misaligned, or crossing a register), else what was dropped of it, if anything.
    pub fn write(&mut self, vcpu: u32, addr: u64, size: u32, value: u64) -> Option<Vec<Dropped>> {
        if !aligned(addr, size) || vcpu >= self.vcpus {
            return None;
        }
        if addr == ANY_SEND && size == 8 {
            return Some(self.any_send(value));
        }
        if addr & !7 == MISC_FUNC {
            let word = value << (8 * (addr & 7));
            let lanes = if size == 8 {
                u64::MAX
            } else {
                ((1u64 << (8 * size)) - 1) << (8 * (addr & 7))
            };
            let mut dropped = Vec::new();
            if lanes & EXT_IOI_EN != 0 {
                self.ext_ioi = word & EXT_IOI_EN != 0;
            }
            if word & lanes & !EXT_IOI_EN != 0 {
                dropped.push(Dropped::MiscFunc);
            }
            return Some(dropped);
        }
        let (reg, first) = Reg::of(addr)?;
        if Reg::of(addr + u64::from(size) - 1).map(|(r, _)| r) != Some(reg) {
            return None;
        }
        let mut dropped = Vec::new();
        for k in 0..size as usize {
            let b = (value >> (8 * k)) as u8;
            if let Some(d) = self.write_byte(vcpu, reg, first + k, b) {
                dropped.push(d);
            }
        }
        Some(dropped)
    }

    fn write_byte(&mut self, vcpu: u32, reg: Reg, i: usize, b: u8) -> Option<Dropped> {
        match reg {
            Reg::NodeMap => self.nodemap[i] = b,
            Reg::IpMap => self.ipmap[i] = b,
            Reg::Enable => self.enable[i] = b,
            Reg::Bounce => self.bounce[i] = b,
            // Writing 1s acknowledges those pending vectors of the writing vCPU.
            Reg::Isr => self.isr[vcpu as usize][i] &= !b,
            Reg::Route => {
                let cores = u32::from(b & 0xf);
                if b >> 4 != 0 || (cores != 0 && 31 - cores.leading_zeros() >= self.vcpus) {
                    return Some(Dropped::Route {
                        vector: i as u8,
                        byte: b,
                    });
                }
                self.route[i] = b;
            }
        }
        None
    }

    /// An ANY_SEND write: register address in bits 15:0, target core in 25:16, a 4-bit byte mask
    /// in 30:27 (a set bit keeps that byte), 32 bits of data in 63:32. The block's registers
    /// are shared by the cores (ISR aside, which a core only acknowledges itself), so the write
    /// goes to the block whichever core it names; a write outside the block, or to ISR, is
    /// dropped as a route would be.
    fn any_send(&mut self, value: u64) -> Vec<Dropped> {
        let addr = value & 0xffff;
        let keep = (value >> 27) & 0xf;
        let data = value >> 32;
        let mut dropped = Vec::new();
        let Some((reg, first)) = Reg::of(addr).filter(|(r, _)| *r != Reg::Isr) else {
            dropped.push(Dropped::MiscFunc);
            return dropped;
        };
        for k in 0..4usize {
            if keep & 1 << k != 0 {
                continue;
            }
            let Some((r, i)) = Reg::of(addr + k as u64) else {
                continue;
            };
            if r != reg {
                continue;
            }
            debug_assert_eq!(i, first + k);
            if let Some(d) = self.write_byte(0, r, i, (data >> (8 * k)) as u8) {
                dropped.push(d);
            }
        }
        dropped
    }

    fn bit(bytes: &[u8], vector: u8) -> bool {
        bytes[usize::from(vector) / 8] & 1 << (vector % 8) != 0
    }

    /// The vCPU vector `vector` is routed to: the lowest core of its ROUTE byte (0 names vCPU 0).
    pub fn target(&self, vector: u8) -> u32 {
        let cores = u32::from(self.route[usize::from(vector)] & 0xf);
        if cores == 0 {
            0
        } else {
            cores.trailing_zeros()
        }
    }

    /// A device's vector arrives (sent by the PCH-PIC view): pending on the vCPU it is routed
    /// to, if the controller is on and the vector enabled. Returns that vCPU, or `None` if the
    /// vector was dropped.
    pub fn raise(&mut self, vector: u8) -> Option<u32> {
        if !self.ext_ioi || !Self::bit(&self.enable, vector) {
            return None;
        }
        let t = self.target(vector);
        self.isr[t as usize][usize::from(vector) / 8] |= 1 << (vector % 8);
        Some(t)
    }

    /// The CPU hardware lines (bit n: HWIn) vCPU `vcpu`'s pending vectors raise: each vector's
    /// group of 32 goes to the HWI its IPMAP byte names (the lowest of bits 3:0; none: HWI0).
    pub fn lines(&self, vcpu: u32) -> u8 {
        let Some(isr) = self.isr.get(vcpu as usize) else {
            return 0;
        };
        let mut lines = 0;
        for (group, chunk) in isr.chunks(4).enumerate() {
            if chunk.iter().all(|&b| b == 0) {
                continue;
            }
            let ip = u32::from(self.ipmap[group] & 0xf);
            lines |= 1 << if ip == 0 { 0 } else { ip.trailing_zeros() };
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Linux's `eiointc_router_init` programs on CPU 0 for one node and 256 vectors: every
    /// group to IP1, every vector to core 0, all enabled, extended interrupts on.
    fn linux_init(e: &mut Eiointc) {
        let misc = e.read(0, MISC_FUNC, 8).unwrap();
        assert_eq!(e.write(0, MISC_FUNC, 8, misc | EXT_IOI_EN), Some(vec![]));
        for i in 0..8 {
            let data = ((1 << (i * 2 + 1)) << 16) | (1 << (i * 2));
            e.write(0, NODEMAP + i * 4, 4, data).unwrap();
        }
        for i in 0..2 {
            e.write(0, IPMAP + i * 4, 4, 0x0202_0202).unwrap();
        }
        for i in 0..64 {
            e.write(0, ROUTE + i * 4, 4, 0x0101_0101).unwrap();
        }
        for i in 0..8 {
            e.write(0, ENABLE + i * 4, 4, 0xffff_ffff).unwrap();
            e.write(0, BOUNCE + i * 4, 4, 0xffff_ffff).unwrap();
        }
    }

    /// Linux's `csr_any_send`.
    fn any_send(addr: u64, data: u32, keep: u64, cpu: u64) -> u64 {
        1 << 31 | addr | cpu << 16 | keep << 27 | u64::from(data) << 32
    }

    #[test]
    fn a_vector_pends_on_its_routed_vcpu_and_raises_the_ipmap_line_until_acknowledged() {
        let mut e = Eiointc::new(2);
        assert_eq!(e.raise(2), None, "off after reset");
        linux_init(&mut e);
        assert_eq!(e.read(0, MISC_FUNC, 8), Some(EXT_IOI_EN));
        assert_eq!(e.raise(2), Some(0));
        assert_eq!(e.lines(0), 1 << 1, "IPMAP sends group 0 to HWI1");
        assert_eq!(e.lines(1), 0);
        assert_eq!(e.read(0, ISR, 8), Some(1 << 2));
        assert_eq!(e.read(1, ISR, 8), Some(0), "ISR is per vCPU");
        // Linux's dispatch: read ISR, write the same bits back.
        e.write(0, ISR, 8, 1 << 2).unwrap();
        assert_eq!(e.lines(0), 0);
    }

    #[test]
    fn linux_moves_a_vector_with_any_send_and_disabled_vectors_are_dropped() {
        let mut e = Eiointc::new(2);
        linux_init(&mut e);
        // eiointc_set_irq_affinity(vector 2 -> CPU 1): mask it, route byte 2 of word 0 to core
        // 1 (the other bytes kept), unmask.
        e.write(0, ANY_SEND, 8, any_send(ENABLE, !(1 << 2), 0, 0))
            .unwrap();
        assert_eq!(e.raise(2), None, "disabled");
        assert_eq!(
            e.write(0, ANY_SEND, 8, any_send(ROUTE, 0x02 << 16, 0b1011, 0)),
            Some(vec![])
        );
        e.write(0, ANY_SEND, 8, any_send(ENABLE, 0xffff_ffff, 0, 0))
            .unwrap();
        assert_eq!(e.read(0, ROUTE, 4), Some(0x0102_0101));
        assert_eq!(e.raise(2), Some(1));
        assert_eq!(e.lines(1), 1 << 1);
        assert_eq!(e.lines(0), 0);
    }

    #[test]
    fn routes_outside_the_partition_are_dropped() {
        let mut e = Eiointc::new(2);
        linux_init(&mut e);
        // Core 2 (a third vCPU) and node 1 do not exist here.
        assert_eq!(
            e.write(0, ROUTE + 5, 1, 0x04),
            Some(vec![Dropped::Route {
                vector: 5,
                byte: 0x04
            }])
        );
        assert_eq!(
            e.write(0, ROUTE + 6, 1, 0x11),
            Some(vec![Dropped::Route {
                vector: 6,
                byte: 0x11
            }])
        );
        assert_eq!(e.read(0, ROUTE + 4, 4), Some(0x0101_0101), "unchanged");
        assert_eq!(e.target(5), 0);
        // Other MISC_FUNC bits are not the partition's.
        assert_eq!(
            e.write(0, MISC_FUNC, 8, EXT_IOI_EN | 1),
            Some(vec![Dropped::MiscFunc])
        );
    }

    #[test]
    fn other_addresses_and_bad_widths_are_not_the_blocks() {
        let mut e = Eiointc::new(1);
        for addr in [0x8, 0x1000, 0x1040, 0x1400, 0x1d00] {
            assert_eq!(e.read(0, addr, 4), None, "{addr:#x}");
            assert_eq!(e.write(0, addr, 4, 1), None, "{addr:#x}");
        }
        assert_eq!(e.read(0, ENABLE + 2, 4), None, "misaligned");
        assert_eq!(e.read(0, ENABLE, 3), None);
        assert_eq!(e.read(0, IPMAP, 8), Some(0));
        assert_eq!(e.read(0, IPMAP + 4, 8), None);
        assert_eq!(e.read(1, ISR, 8), None, "no vCPU 1");
    }
}
