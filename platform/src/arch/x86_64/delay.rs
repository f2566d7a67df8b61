//! Timer-free delays for the SMP start-up protocol, by polling the 8254 PIT's channel 2 output
//! through port 0x61 (the way firmware calibrates without interrupts). The PIT counts emulated time,
//! so the same code waits correctly in QEMU (wall clock) and Bochs (instruction count), and it needs
//! no calibration of the CPU's speed.

use arch_x86::io::{inb, outb};

const PIT_HZ: u64 = 1_193_182;
const PIT_CH2: u16 = 0x42;
const PIT_MODE: u16 = 0x43;
const PORT_B: u16 = 0x61;
/// Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count), binary.
const CH2_ONE_SHOT: u8 = 0xb0;
const GATE2: u8 = 0x01;
const SPEAKER: u8 = 0x02;
const OUT2: u8 = 0x20;
/// The longest one-shot the 16-bit counter allows, in microseconds (65535 ticks, ~54.9 ms).
const MAX_CHUNK_US: u64 = 54_000;
/// Guards against a machine without a PIT: never poll forever.
const MAX_POLLS: u32 = 50_000_000;

/// Waits `us` microseconds (at most one PIT chunk), or less if the PIT does not count.
fn wait_chunk(us: u64) {
    let ticks = (us * PIT_HZ / 1_000_000).clamp(1, 0xffff) as u16;
    // SAFETY: the PIT and port 0x61 belong to the hypervisor (no partition is given them on x86
    // boards); channel 2 only drives the speaker, which stays off.
    unsafe {
        let b = inb(PORT_B);
        outb(PORT_B, (b & !SPEAKER) | GATE2);
        outb(PIT_MODE, CH2_ONE_SHOT);
        outb(PIT_CH2, ticks as u8);
        outb(PIT_CH2, (ticks >> 8) as u8);
        for _ in 0..MAX_POLLS {
            if inb(PORT_B) & OUT2 != 0 {
                break;
            }
            core::hint::spin_loop();
        }
    }
}

/// Waits `us` microseconds.
pub fn wait_us(us: u64) {
    let mut left = us;
    while left > 0 {
        let chunk = left.min(MAX_CHUNK_US);
        wait_chunk(chunk);
        left -= chunk;
    }
}

/// Waits until `done()` holds, checking every `step_us`, for at most `timeout_us`. Returns whether
/// `done()` held.
pub fn wait_until(timeout_us: u64, step_us: u64, done: impl Fn() -> bool) -> bool {
    let mut waited = 0;
    loop {
        if done() {
            return true;
        }
        if waited >= timeout_us {
            return false;
        }
        wait_us(step_us);
        waited += step_us;
    }
}
