//! The physical PCH-PIC and EIOINTC, as the partitions' device lines use them: the one
//! `arch_loongarch::device_irq::DeviceLines` of the machine, behind a lock (any CPU routes a
//! line, the CPU a line was routed to takes it), and its hardware access: IOCSR instructions for
//! EIOINTC and uncached loads and stores for the PCH-PIC window the board file names.

use crate::board::BOARD;
use arch_loongarch::csr::UNCACHED_BASE;
use arch_loongarch::device_irq::{DeviceIrqHw, DeviceLines, RouteError, Target};
use arch_loongarch::iocsr;
use spin::Mutex;

/// The driver, set up by the first route (the boot masks every line before any partition runs).
static LINES: Mutex<Option<DeviceLines>> = Mutex::new(None);

/// The chips themselves.
struct RealChips;

impl RealChips {
    fn pic(offset: u64) -> u64 {
        UNCACHED_BASE | (BOARD.irqchip.mmio.start + offset)
    }
}

impl DeviceIrqHw for RealChips {
    fn iocsr_read64(&mut self, addr: u64) -> u64 {
        iocsr::read64(addr)
    }

    fn iocsr_write64(&mut self, addr: u64, value: u64) {
        // SAFETY: the driver writes only EIOINTC registers and MISC_FUNC's EXT_IOI_EN, which the
        // hypervisor owns; no partition reaches the physical EIOINTC.
        unsafe { iocsr::write64(addr, value) };
    }

    fn pic_write32(&mut self, offset: u64, value: u32) {
        // SAFETY: the PCH-PIC window is the board's `irqchip`, the hypervisor's own (the checker
        // keeps every partition's memory and devices off it), reached uncached through DMW0.
        unsafe { (Self::pic(offset) as *mut u32).write_volatile(value) };
    }

    fn pic_write8(&mut self, offset: u64, value: u8) {
        // SAFETY: as for `pic_write32`.
        unsafe { (Self::pic(offset) as *mut u8).write_volatile(value) };
    }
}

fn with_lines<R>(f: impl FnOnce(&mut DeviceLines, &mut RealChips) -> R) -> R {
    let mut guard = LINES.lock();
    let lines = guard.get_or_insert_with(|| {
        let mut d = DeviceLines::new(BOARD.irqchip.lines);
        d.init(&mut RealChips);
        d
    });
    f(lines, &mut RealChips)
}

/// Programs `line` to `target` (core = CPU index), or masks it.
pub fn route(line: u32, target: Option<Target>) -> Result<(), RouteError> {
    with_lines(|d, hw| d.route(hw, line, target))
}

/// The lines pending on the calling CPU, acknowledged (`DeviceLines::take`).
pub fn take() -> u64 {
    with_lines(|d, hw| d.take(hw))
}
