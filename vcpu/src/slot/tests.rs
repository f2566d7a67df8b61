//! The start rules and the interrupt bookkeeping of a vCPU slot.

use super::*;

#[test]
fn a_start_is_posted_once_and_taken_once() {
    let s = VcpuSlot::new(2);
    assert_eq!(s.state(), VcpuState::Off);
    assert!(s.request_start(0x20_0000, 7));
    // A second request while the first waits, or once the vCPU runs, is refused.
    assert!(!s.request_start(0x30_0000, 8));
    assert_eq!(s.state(), VcpuState::Starting);
    assert_eq!(s.take_start(), Some((0x20_0000, 7, false)));
    assert_eq!(s.state(), VcpuState::Running);
    assert_eq!(s.take_start(), None);
    assert!(!s.request_start(0x30_0000, 8));
}

#[test]
fn a_startup_starts_in_real_mode_only_a_waiting_vcpu() {
    let s = VcpuSlot::new(1);
    assert!(s.request_startup(0x8000));
    assert_eq!(s.take_start(), Some((0x8000, 0, true)));
    assert!(!s.request_startup(0x9000), "a running vCPU ignores STARTUP");
}

#[test]
fn a_startup_racing_an_init_starts_the_vcpu_once_the_init_is_done() {
    let s = VcpuSlot::new(1);
    s.request_start(0x20_0000, 0);
    s.take_start();
    s.raise(VirtualIrq::Ipi);
    // INIT of the running vCPU, then a STARTUP before the INIT took effect.
    assert!(
        !s.defer_startup(0x8000),
        "no INIT pending: nothing to defer"
    );
    s.request_init();
    assert!(s.init_pending());
    assert!(s.defer_startup(0x8000));
    s.finish_init();
    assert!(!s.init_pending());
    assert!(!s.has_pending(), "a reset drops what was pending");
    assert_eq!(s.take_start(), Some((0x8000, 0, true)));
}

#[test]
fn an_init_with_no_startup_leaves_the_vcpu_waiting() {
    let s = VcpuSlot::new(1);
    s.request_start(0x20_0000, 0);
    s.take_start();
    s.request_init();
    s.finish_init();
    assert_eq!(s.state(), VcpuState::Off);
    assert_eq!(s.take_start(), None);
}

#[test]
fn pending_interrupts_are_taken_in_turn_so_none_starves() {
    let s = VcpuSlot::new(0);
    s.raise(VirtualIrq::Timer);
    s.raise(VirtualIrq::Ipi);
    s.raise(VirtualIrq::Device(3));
    assert_eq!(s.take_pending(), Some(VirtualIrq::Timer));
    // The timer fires again at once; the IPI and the device still go first.
    s.raise(VirtualIrq::Timer);
    assert_eq!(s.take_pending(), Some(VirtualIrq::Ipi));
    assert_eq!(s.take_pending(), Some(VirtualIrq::Device(3)));
    assert_eq!(s.take_pending(), Some(VirtualIrq::Timer));
    assert_eq!(s.take_pending(), None);
}

#[test]
fn a_device_vector_is_known_as_one_until_delivered() {
    let s = VcpuSlot::new(0);
    s.raise_device_vector(0x42, 1234);
    s.raise_vector(0x43);
    assert_eq!(s.take_device_vector(0x42), Some(1234));
    assert_eq!(s.take_device_vector(0x42), None, "counted once");
    assert_eq!(s.take_device_vector(0x43), None, "not a device's");
}

#[test]
fn a_new_run_starts_from_an_off_vcpu_with_nothing_pending() {
    let s = VcpuSlot::new(3);
    s.request_start(0x20_0000, 0);
    s.take_start();
    s.raise(VirtualIrq::Device(5));
    s.raise_vector(0x50);
    s.request_init();
    s.reset_for_run();
    assert_eq!(s.state(), VcpuState::Off);
    assert!(!s.has_pending());
    assert!(!s.init_pending());
    assert_eq!(s.vectors(), [0; 4]);
    assert!(s.request_start(0x20_0000, 1));
}
