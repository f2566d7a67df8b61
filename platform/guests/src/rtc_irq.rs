//! LoongArch only: a physical device interrupt for the worker's multi-vCPU scenario. The device
//! is the LS7A RTC at 0x100d_0100, which the board gives the worker (its MMIO window and its
//! PCH-PIC line). Its line differs between the two emulators: QEMU 9.0's `virt` (the base of
//! QEMU-LVZ) wires it to PCH-PIC line 3, QEMU 10 to line 6 (lines 2-5 became four UARTs there),
//! so the board gives the worker both lines and the guest routes both; the line that fires says
//! which machine this is. Enabling the RTC raises its line at once: QEMU arms the zeroed match
//! registers, which are in the past. The line then stays raised (QEMU's RTC has no way to clear
//! it), so the device asserts its line for as long as the scenario runs.
//!
//! Two ways to route it:
//! * under LVZ, the hardware way: the PCH-PIC view (line → vector, level-triggered, to vCPU 1)
//!   and the EIOINTC view (vector enabled, on HWI1, routed to vCPU 1), reached through MMIO and
//!   IOCSR exits; the interrupt arrives at the guest's exception vector as HWI1 and its vector
//!   is read from the EIOINTC view's ISR (`smp::on_exception`);
//! * in the deprivileged backend, the `IRQ_ROUTE` hypercall (edge, as the ABI routes), the line
//!   arriving as an upcall.

use crate::{call, nr, rt};

/// The RTC's PCH-PIC line on QEMU 9.0 (QEMU-LVZ) and on QEMU 10.
pub const LINES: [u32; 2] = [3, 6];
/// The EIOINTC vector the guest gives line `n`: `VECTOR_BASE + n`.
pub const VECTOR_BASE: u8 = 16;

const RTC: u64 = 0x100d_0100;
/// RTC control: EO (oscillator on, bit 8) and RTCEN (bit 13).
const RTC_CTRL: u64 = RTC + 0x40;
const RTC_CTRL_ON: u32 = 1 << 8 | 1 << 13;

/// The PCH-PIC view's registers (`vcpu::irqchip::pch_pic`).
const PIC_MASK: u64 = rt::IRQCHIP + 0x20;
const PIC_HTMSI_EN: u64 = rt::IRQCHIP + 0x40;
const PIC_EDGE: u64 = rt::IRQCHIP + 0x60;
const PIC_ROUTE: u64 = rt::IRQCHIP + 0x100;
const PIC_VECTOR: u64 = rt::IRQCHIP + 0x200;

/// The EIOINTC view's registers (`vcpu::irqchip::eiointc`), IOCSR addresses.
const MISC_FUNC_HIGH: u64 = 0x424;
const EXT_IOI_EN_HIGH: u32 = 1 << 16;
const IPMAP: u64 = 0x14c0;
const ENABLE: u64 = 0x1600;
const ROUTE: u64 = 0x1c00;

fn mmio_read32(addr: u64) -> u32 {
    // SAFETY: a device window of this partition (the RTC) or the controller view the hypervisor
    // emulates; the access touches no guest memory.
    unsafe { (addr as *const u32).read_volatile() }
}

fn mmio_write32(addr: u64, value: u32) {
    // SAFETY: as `mmio_read32`.
    unsafe { (addr as *mut u32).write_volatile(value) }
}

fn mmio_write8(addr: u64, value: u8) {
    // SAFETY: as `mmio_read32`.
    unsafe { (addr as *mut u8).write_volatile(value) }
}

fn vector_of(line: u32) -> u8 {
    VECTOR_BASE + line as u8
}

/// Under LVZ: routes each of [`LINES`] to vCPU `vcpu` (0-3) through the views, level-triggered,
/// unmasked last.
pub fn route_views(vcpu: u32) {
    let core = 1u32 << vcpu;
    rt::iocsr_write32(MISC_FUNC_HIGH, EXT_IOI_EN_HIGH);
    // Every vector group on HWI1 (IPMAP bit 1), as Linux sets it.
    rt::iocsr_write32(IPMAP, 0x0202_0202);
    let mut enable = 0;
    for line in LINES {
        let v = vector_of(line);
        enable |= 1 << v;
        // ROUTE is reached by 32-bit words of four vectors; the others go to vCPU 0.
        let word = ROUTE + u64::from(v & !3);
        let shift = u32::from(v & 3) * 8;
        let bytes = 0x0101_0101 & !(0xff << shift) | core << shift;
        rt::iocsr_write32(word, bytes);
        mmio_write8(PIC_VECTOR + u64::from(line), v);
        mmio_write8(PIC_ROUTE + u64::from(line), core as u8);
    }
    rt::iocsr_write32(ENABLE, enable);
    let bits = LINES.iter().fold(0u32, |m, l| m | 1 << l);
    mmio_write32(PIC_EDGE, mmio_read32(PIC_EDGE) & !bits);
    mmio_write32(PIC_HTMSI_EN, mmio_read32(PIC_HTMSI_EN) | bits);
    mmio_write32(PIC_MASK, mmio_read32(PIC_MASK) & !bits);
}

/// Under LVZ: masks (`true`) or unmasks `line` in the PCH-PIC view.
pub fn set_masked(line: u32, masked: bool) {
    let mask = mmio_read32(PIC_MASK);
    let bit = 1 << line;
    mmio_write32(PIC_MASK, if masked { mask | bit } else { mask & !bit });
}

/// In the deprivileged backend: routes each of [`LINES`] to vCPU `vcpu` with `IRQ_ROUTE`;
/// true if every route was accepted.
pub fn route_hypercall(vcpu: u32) -> bool {
    LINES
        .iter()
        .all(|&line| call(nr::IRQ_ROUTE, u64::from(line), u64::from(vcpu), 0) == 0)
}

/// The line behind vector `v`, if it is one of [`LINES`].
pub fn line_of(v: u32) -> Option<u32> {
    LINES.into_iter().find(|&l| u32::from(vector_of(l)) == v)
}

/// Turns the RTC on: its line rises.
pub fn start() {
    mmio_write32(RTC_CTRL, RTC_CTRL_ON);
}

/// Turns the RTC off (its line stays raised: QEMU's RTC never lowers it).
pub fn stop() {
    mmio_write32(RTC_CTRL, 0);
}
